"""`Idempotency-Key` on the POSTs that create things: a retry returns the first answer.

A record per (API key, method, path, Idempotency-Key) lives in Neo4j, so every replica
sees it:

    (:IdempotencyRecord {id, token, state, fingerprint, status, body, created_at, expires_at, lease_until})

1. The first request claims the record (MERGE on its unique `id`, so of two racing requests
   exactly one claims it), runs, and stores its status and JSON body (`state: 'done'`).
   A failure (any error response) deletes the claim, so the client's retry runs afresh.
2. A retry with the same body (its canonical JSON's SHA-256, `fingerprint`) gets the stored
   answer again, with `Idempotent-Replayed: true`, and writes nothing.
3. The same key with a different body is refused (422 `idempotency-key-reused`); while the
   first request is still running a retry gets 409 `idempotency-key-in-use` with Retry-After.

Records expire after `api_idempotency_ttl_s` (default 24 h). Expired records are deleted as new ones come.

A claim whose request died with its server (kill -9, out of memory, power cut) must not hold the
key. The claim names its owner: the host (its name, the kernel's boot id and the process's pid
namespace, so two containers or a reboot never look like one host), the pid and that process's
start time. A retry that finds the claim in use and sees that the owner is on this same host and
no longer alive (no such pid, a zombie, or the pid reused by a process started at another time)
takes the claim over at once, and runs (a completed record is replayed as always). An owner on
another host cannot be checked from here: its claim keeps its lease and lapses after `LEASE_S`.

The answer, first or replayed, is the route's response model written as JSON, as FastAPI writes
the routes that return a model: what the model does not declare stays out, and a value JSON cannot
hold (a NaN stored before kgmem refused them) is null rather than a 500 after the write committed.
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import socket
import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from typing import Any

from fastapi import Request
from fastapi.encoders import jsonable_encoder
from fastapi.responses import JSONResponse
from pydantic import BaseModel, TypeAdapter

from api.problems import ApiProblem
from graph.errors import Conflict
from graph.gateway import Gateway

HEADER = "Idempotency-Key"
REPLAYED_HEADER = "Idempotent-Replayed"
KEY_PATTERN = r"^[\x21-\x7e]{1,255}$"  # visible ASCII, as the IETF draft's examples
LEASE_S = 300

SCHEMA = [
    "CREATE CONSTRAINT idempotency_record_id IF NOT EXISTS FOR (r:IdempotencyRecord) REQUIRE r.id IS UNIQUE",
    "CREATE INDEX idempotency_record_expiry IF NOT EXISTS FOR (r:IdempotencyRecord) ON (r.expires_at)",
]

CLAIM = """
OPTIONAL MATCH (stale:IdempotencyRecord {id: $id})
WHERE stale.expires_at <= $now OR (stale.state = 'claimed' AND stale.lease_until <= $now)
DELETE stale
WITH count(*) AS _
MERGE (r:IdempotencyRecord {id: $id})
ON CREATE SET r.token = $token, r.state = 'claimed', r.fingerprint = $fingerprint, r.created_at = $now,
              r.expires_at = $expires_at, r.lease_until = $lease_until,
              r.owner_host = $owner_host, r.owner_pid = $owner_pid, r.owner_started = $owner_started
RETURN r.token = $token AS mine, r.token AS token, r.state AS state, r.fingerprint AS fingerprint,
       r.status AS status, r.body AS body,
       r.owner_host AS owner_host, r.owner_pid AS owner_pid, r.owner_started AS owner_started
"""

# A claim whose owner is known dead is removed, only if it is still that claim (a racing retry may
# have taken it over already, and then the next CLAIM finds the new one in use).
TAKE_OVER = "MATCH (r:IdempotencyRecord {id: $id}) WHERE r.token = $stale_token AND r.state = 'claimed' DELETE r"

COMPLETE = """
MATCH (r:IdempotencyRecord {id: $id})
WHERE r.token = $token
SET r.state = 'done', r.status = $status, r.body = $body
REMOVE r.lease_until
"""

RELEASE = "MATCH (r:IdempotencyRecord {id: $id}) WHERE r.token = $token DELETE r"

# A few expired records go with every claim, so they never pile up.
SWEEP = """
MATCH (r:IdempotencyRecord) WHERE r.expires_at <= $now
WITH r LIMIT 100
DELETE r
"""


# Stored answers that may hold forgotten data (a forget removes them; the client's retry then runs afresh).
ANSWERS_CONTAINING = """
MATCH (r:IdempotencyRecord) WHERE r.body IS NOT NULL AND any(s IN $needles WHERE toLower(r.body) CONTAINS s)
RETURN r.id AS id, r.body AS body
"""
DELETE_RECORDS = "UNWIND $ids AS id MATCH (r:IdempotencyRecord {id: id}) DELETE r"
NEEDLES_PER_QUERY = 1000


def _read(path: str) -> str:
    try:
        with open(path) as file:
            return file.read().strip()
    except OSError:
        return ""


def _host_identity() -> str:
    """This host as a claim's owner sees it: name, kernel boot and pid namespace (empty parts where unknown)."""
    try:
        namespace = os.readlink("/proc/self/ns/pid")
    except OSError:
        namespace = ""
    return "/".join((socket.gethostname(), _read("/proc/sys/kernel/random/boot_id"), namespace))


def process_started(pid: int) -> str | None:
    """When process `pid` started (clock ticks after boot, from /proc), or None: no such process, or a zombie.

    Where /proc is missing (not Linux) the start is "" for a process that exists, so only its pid counts.
    """
    stat = _read(f"/proc/{pid}/stat")
    if stat:
        fields = stat.rsplit(")", 1)[-1].split()  # after the command name, which may hold spaces
        return None if fields[0] in ("Z", "X") else fields[19]
    if os.path.isdir("/proc/self"):
        return None  # Linux, and no such process
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None
    except PermissionError:
        pass
    return ""


HOST = _host_identity()


def owner(pid: int | None = None) -> dict[str, Any]:
    """The owner fields of a claim made by process `pid` (this one by default) on this host."""
    pid = os.getpid() if pid is None else pid
    return {"owner_host": HOST, "owner_pid": pid, "owner_started": process_started(pid)}


def owner_gone(row: dict[str, Any]) -> bool:
    """Whether a claim's owner is known to be dead: on this host, and its process no longer runs.

    An owner on another host (or a claim from before owners were recorded) is never judged from here.
    """
    if row.get("owner_host") != HOST or row.get("owner_pid") is None:
        return False
    started = process_started(int(row["owner_pid"]))
    return started is None or (started != "" and started != row.get("owner_started"))


def fingerprint(body: Any) -> str:
    canonical = json.dumps(jsonable_encoder(body), sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()


def record_id(key_id: str, method: str, path: str, idempotency_key: str) -> str:
    return hashlib.sha256(f"{key_id}\n{method}\n{path}\n{idempotency_key}".encode()).hexdigest()


class EncodedJSONResponse(JSONResponse):
    """A JSON answer whose body is already encoded (by the response model, or as stored)."""

    def render(self, content: bytes) -> bytes:
        return content


@lru_cache(maxsize=128)
def _adapter(response_model: Any) -> TypeAdapter:
    return TypeAdapter(response_model)


def encode(request: Request, result: Any) -> bytes:
    """`result` as JSON through the route's response model; jsonable_encoder for a route without one."""
    response_model = getattr(request.scope.get("route"), "response_model", None)
    if response_model is None:
        return json.dumps(jsonable_encoder(result), separators=(",", ":")).encode()
    adapter = _adapter(response_model)
    return adapter.dump_json(adapter.validate_python(result))


class IdempotencyStore:
    def __init__(self, gateway: Gateway, ttl_s: int) -> None:
        self.gateway = gateway
        self.ttl_s = ttl_s
        self._schema_ready = False
        self._lock = threading.Lock()

    def _run(self, cypher: str, **params: Any) -> list[dict[str, Any]]:
        return self.gateway.write(cypher, **params)

    def ensure_schema(self) -> None:
        with self._lock:
            if not self._schema_ready:
                for statement in SCHEMA:
                    self._run(statement)
                self._schema_ready = True

    def run(self, request: Request, key_id: str, idempotency_key: str | None, body: Any,
            work: Callable[[], BaseModel | Any], *, status_code: int = 200) -> JSONResponse:
        """Run `work` once per Idempotency-Key; without a key, just run it."""
        if idempotency_key is None:
            return EncodedJSONResponse(encode(request, work()), status_code=status_code)
        self.ensure_schema()
        rid = record_id(key_id, request.method, request.url.path, idempotency_key)
        token = secrets.token_hex(16)
        digest = fingerprint(body)
        now = datetime.now(UTC)
        params = {"id": rid, "token": token, "fingerprint": digest, "now": now,
                  "expires_at": now + timedelta(seconds=self.ttl_s), "lease_until": now + timedelta(seconds=LEASE_S),
                  **owner()}
        row = self._claim(params)
        if not row["mine"] and row["state"] == "claimed" and owner_gone(row):
            self._run(TAKE_OVER, id=rid, stale_token=row["token"])
            row = self._claim(params)
        self._run(SWEEP, now=now)
        if not row["mine"]:
            return self._answer_for_existing(row, digest)
        try:
            content = encode(request, work())
        except BaseException:
            self._run(RELEASE, id=rid, token=token)
            raise
        self._run(COMPLETE, id=rid, token=token, status=status_code, body=content.decode())
        return EncodedJSONResponse(content, status_code=status_code)

    def forget(self, needles: list[str], mentions: Callable[[str], bool]) -> int:
        """Delete the stored answers whose body holds a needle (lower case) that `mentions` confirms."""
        doomed: set[str] = set()
        for start in range(0, len(needles), NEEDLES_PER_QUERY):
            rows = self._run(ANSWERS_CONTAINING, needles=needles[start:start + NEEDLES_PER_QUERY])
            doomed |= {row["id"] for row in rows if mentions(row["body"])}
        if doomed:
            self._run(DELETE_RECORDS, ids=sorted(doomed))
        return len(doomed)

    def _claim(self, params: dict[str, Any]) -> dict[str, Any]:
        try:
            return self._run(CLAIM, **params)[0]
        except Conflict:  # a racing claim created it between our MERGE's lookup and write
            return self._run(CLAIM, **params)[0]

    @staticmethod
    def _answer_for_existing(row: dict[str, Any], digest: str) -> JSONResponse:
        if row["fingerprint"] != digest:
            raise ApiProblem(422, "idempotency-key-reused", "Idempotency-Key reused",
                             f"this {HEADER} was used before with a different request body; "
                             "use a new key for a new request")
        if row["state"] != "done":
            raise ApiProblem(409, "idempotency-key-in-use", "Request in progress",
                             f"a request with this {HEADER} is still being processed; retry shortly",
                             headers={"Retry-After": "1"})
        return EncodedJSONResponse(row["body"].encode(), status_code=int(row["status"]),
                                   headers={REPLAYED_HEADER: "true"})
