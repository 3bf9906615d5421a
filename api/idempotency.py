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

Records expire after `api_idempotency_ttl_s` (default 24 h); a claim whose request died
(its replica crashed) lapses after `LEASE_S`. Expired records are deleted as new ones come.
"""

from __future__ import annotations

import hashlib
import json
import secrets
import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from fastapi import Request
from fastapi.encoders import jsonable_encoder
from fastapi.responses import JSONResponse
from pydantic import BaseModel

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
              r.expires_at = $expires_at, r.lease_until = $lease_until
RETURN r.token = $token AS mine, r.state AS state, r.fingerprint AS fingerprint, r.status AS status, r.body AS body
"""

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


def fingerprint(body: Any) -> str:
    canonical = json.dumps(jsonable_encoder(body), sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()


def record_id(key_id: str, method: str, path: str, idempotency_key: str) -> str:
    return hashlib.sha256(f"{key_id}\n{method}\n{path}\n{idempotency_key}".encode()).hexdigest()


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
            return JSONResponse(jsonable_encoder(work()), status_code=status_code)
        self.ensure_schema()
        rid = record_id(key_id, request.method, request.url.path, idempotency_key)
        token = secrets.token_hex(16)
        digest = fingerprint(body)
        now = datetime.now(UTC)
        params = {"id": rid, "token": token, "fingerprint": digest, "now": now,
                  "expires_at": now + timedelta(seconds=self.ttl_s), "lease_until": now + timedelta(seconds=LEASE_S)}
        try:
            row = self._run(CLAIM, **params)[0]
        except Conflict:  # a racing claim created it between our MERGE's lookup and write
            row = self._run(CLAIM, **params)[0]
        self._run(SWEEP, now=now)
        if not row["mine"]:
            return self._answer_for_existing(row, digest)
        try:
            content = jsonable_encoder(work())
        except BaseException:
            self._run(RELEASE, id=rid, token=token)
            raise
        self._run(COMPLETE, id=rid, token=token, status=status_code, body=json.dumps(content))
        return JSONResponse(content, status_code=status_code)

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
        return JSONResponse(json.loads(row["body"]), status_code=int(row["status"]),
                            headers={REPLAYED_HEADER: "true"})
