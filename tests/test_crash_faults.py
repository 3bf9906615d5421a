"""kgmem under crashes, with real parts: `kgmem serve` killed with SIGKILL in the middle of an ingest.

The server is the real executable, on the suite's Neo4j and a Chroma directory of its own. What it
acknowledged (200) before it died must be in Neo4j after the restart, and found by recall, by meaning
too, once the start-up reconcile has given the vectors that the kill cut off. A request cut off by the
kill is retried with the same `Idempotency-Key` and runs at once, not 409 until a lease lapses.
Each test is bounded in time.
"""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Self

import httpx
import pytest
import test_faults
from api_server import ALL_SCOPES, LiveApi, api_settings, serve
from cli_helpers import KGMEM

from api.auth import KeyStore
from api.idempotency import LEASE_S, record_id
from graph import Gateway, Neo4jTarget
from graph.neo4j_server.server import free_port

ENTITY = {"kind": "Project", "name": "Forecast"}
TOPICS = ["holiday spike", "weekly baseline", "store closures", "price changes", "weather shocks", "promo calendar",
          "stock-outs", "regional mix", "new stores", "returns", "currency moves", "web traffic"]


class Server:
    """`kgmem serve` as a subprocess on the suite's Neo4j, with a KGMEM_HOME (and so a Chroma) of its own."""

    def __init__(self, home: Path, neo4j_server) -> None:
        self.home = home
        self.key_secret = secrets.token_urlsafe(32)  # what its API keys are hashed under
        self.env = {**os.environ, "KGMEM_HOME": str(home), "KGMEM_CONFIG": str(home / "kgmem.toml"),
                    "KGMEM_API_KEY_SECRET": self.key_secret,
                    "NEO4J_URI": neo4j_server.uri, "NEO4J_USERNAME": neo4j_server.username,
                    "NEO4J_PASSWORD": neo4j_server.password, "NEO4J_DATABASE": neo4j_server.database,
                    "KGMEM_API_RATE_LIMIT_PER_MINUTE": "0"}
        self.env.pop("KGMEM_AUTH_DISABLED", None)
        self.env.pop("KGMEM_CHROMA_PATH", None)
        self.process: subprocess.Popen | None = None
        self.output: list[str] = []
        self.base_url = ""

    def start(self, timeout: float = 240) -> None:
        port = free_port()
        self.base_url = f"http://127.0.0.1:{port}"
        self.process = subprocess.Popen([KGMEM, "serve", "--port", str(port), "--log-level", "warning"], env=self.env,
                                        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        process = self.process
        threading.Thread(target=lambda: self.output.extend(process.stdout), daemon=True).start()
        deadline = time.monotonic() + timeout
        while True:
            assert process.poll() is None, f"kgmem serve exited early: {''.join(self.output)[-3000:]}"
            try:
                if httpx.get(f"{self.base_url}/readyz", timeout=5).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, f"kgmem serve not ready in {timeout:.0f} s: {''.join(self.output)[-3000:]}"
            time.sleep(0.5)

    def kill(self) -> None:
        """kill -9: no shutdown, no clean-up, whatever was in flight is cut off."""
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=30)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(timeout=120)
            except subprocess.TimeoutExpired:
                self.kill()


@pytest.fixture
def server(neo4j_server, tmp_path) -> Iterator[Server]:
    """The server, not yet started; stopped (if it runs) afterwards."""
    running = Server(tmp_path / "home", neo4j_server)
    try:
        yield running
    finally:
        running.stop()


@pytest.fixture
def key(server, gateway, space) -> Iterator[tuple[str, str]]:
    """A key of all scopes for the test's space, on the server: its id and its token."""
    keys = KeyStore(gateway, secret=server.key_secret.encode())  # hashed as the server checks them
    created, token = keys.create("crash test", ALL_SCOPES, [space])
    yield created.key_id, token
    gateway.write("MATCH (k:ApiKey {key_id: $id}) DETACH DELETE k", id=created.key_id)


def observation(n: int) -> dict:
    return {"entity": ENTITY, "text": f"Note {n}: the {TOPICS[n % len(TOPICS)]} moved the forecast error by {n} points"}


def stored(gateway, space: str, text: str) -> int:
    return gateway.rows("MATCH (o:Observation {space: $space, text: $text}) RETURN count(o) AS n",
                        space=space, text=text)[0]["n"]


def claim_state(gateway, record: str) -> str | None:
    rows = gateway.rows("MATCH (r:IdempotencyRecord {id: $id}) RETURN r.state AS state", id=record)
    return rows[0]["state"] if rows else None


def pending(http: httpx.Client, space: str) -> int:
    response = http.get(f"/v1/spaces/{space}/admin/stats")
    assert response.status_code == 200, response.text
    return response.json()["pending"]


def send(http: httpx.Client, path: str, body: dict, idempotency_key: str) -> httpx.Response | httpx.TransportError:
    try:
        return http.post(path, json=body, headers={"Idempotency-Key": idempotency_key})
    except httpx.TransportError as exc:
        return exc


@pytest.mark.timeout(600)
def test_every_write_acknowledged_before_a_kill_9_survives_the_restart(server, key, space, gateway):
    key_id, token = key
    path = f"/v1/spaces/{space}/observations"
    server.start()
    acknowledged: list[dict] = []
    with httpx.Client(base_url=server.base_url, headers={"Authorization": f"Bearer {token}"}, timeout=120) as http:
        # One write at a time, each with its own Idempotency-Key, each answered 200 ...
        for n in range(10):
            response = http.post(path, json={"observations": [observation(n)], "create_missing": True},
                                 headers={"Idempotency-Key": str(uuid.uuid4())})
            assert response.status_code == 200, response.text
            acknowledged.append(observation(n))

        # ... then a large one, killed (-9) while it runs: its claim on its Idempotency-Key is in Neo4j.
        batch = {"observations": [observation(n) for n in range(10, 210)], "create_missing": True}
        cut_off_key = str(uuid.uuid4())
        record = record_id(key_id, "POST", path, cut_off_key)
        outcome: list = []
        sender = threading.Thread(target=lambda: outcome.append(send(http, path, batch, cut_off_key)), daemon=True)
        sender.start()
        deadline = time.monotonic() + 60
        while claim_state(gateway, record) != "claimed":
            assert time.monotonic() < deadline and sender.is_alive(), f"the request never ran: {outcome}"
            time.sleep(0.01)
        server.kill()
        sender.join(timeout=60)
    assert isinstance(outcome[0], httpx.TransportError), outcome  # never answered
    assert claim_state(gateway, record) == "claimed"  # as the dead server left it

    server.start()  # the same home, Chroma and Neo4j; the start-up reconcile gives the missing vectors
    with httpx.Client(base_url=server.base_url, headers={"Authorization": f"Bearer {token}"}, timeout=120) as http:
        # The request the kill cut off, retried with its key: it runs at once (its claim's owner is dead),
        # not 409 until the claim's lease lapses; observations are keyed by content, so it writes each once.
        started = time.monotonic()
        retried = send(http, path, batch, cut_off_key)
        assert retried.status_code == 200, retried.text
        assert time.monotonic() - started < 60 < LEASE_S
        assert len(retried.json()["observations"]) == len(batch["observations"])
        acknowledged.extend(batch["observations"])

        # Every acknowledged write is in Neo4j, once ...
        assert [item["text"] for item in acknowledged if stored(gateway, space, item["text"]) != 1] == []

        # ... and has its vector once the reconciler is done, so recall finds it by meaning too.
        deadline = time.monotonic() + 240
        while pending(http, space):
            assert time.monotonic() < deadline, "the reconciler did not index the writes within 240 s"
            time.sleep(1)
        for item in acknowledged[:10] + acknowledged[10::20]:
            answer = http.post(f"/v1/spaces/{space}/recall", json={"text": item["text"], "limit": 10})
            assert answer.status_code == 200, answer.text
            found = [hit for hit in answer.json()["items"] if hit["text"] == item["text"]]
            assert found and "vector" in found[0]["channels"], (item["text"], answer.json())


# -- Neo4j stopped and started under load ---------------------------------------------------------------------
own_neo4j = test_faults.own_neo4j  # a Neo4j of this module's own, that its tests may stop and start


@pytest.fixture
def api_on_own_neo4j(own_neo4j, embedder, tmp_path) -> Iterator[LiveApi]:
    """The REST API (uvicorn in a thread, default settings) on a Neo4j this test may stop and start."""
    uri, (user, password) = own_neo4j.connection()
    target = Neo4jTarget(uri, user, password, "neo4j")
    gateway = Gateway.to(target)
    try:
        with serve(api_settings(target, tmp_path / "home", api_rate_limit_per_minute=0), gateway, embedder) as live:
            yield live
    finally:
        gateway.close()


class Load:
    """A client calling the API one request after another, in a thread: a write, then a recall, and again."""

    def __init__(self, live: LiveApi, space: str) -> None:
        self.http = live.http(live.token([space]))
        self.space = space
        self.answers: list[tuple[float, str, int, float, str | None]] = []  # (at, route, status, seconds, Retry-After)
        self.errors: list[str] = []
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._loop, name="load", daemon=True)

    def _loop(self) -> None:
        n = 0
        while not self.stopping.is_set():
            n += 1
            for route, body in (("entities", {"entities": [{"kind": "Project", "name": f"Load {n}"}]}),
                                ("recall", {"text": f"what happened to load {n}?", "limit": 5})):
                started = time.monotonic()
                try:
                    response = self.http.post(f"/v1/spaces/{self.space}/{route}", json=body)
                except httpx.HTTPError as exc:  # the API itself must stay up: any of these fails the test
                    self.errors.append(f"{route}: {exc!r}")
                    continue
                self.answers.append((started, route, response.status_code, time.monotonic() - started,
                                     response.headers.get("retry-after")))

    def since(self, moment: float) -> list[tuple[float, str, int, float, str | None]]:
        return [answer for answer in list(self.answers) if answer[0] >= moment]

    def wait_for(self, check, what: str, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while not check():
            assert self.thread.is_alive() and time.monotonic() < deadline, f"{what} not within {timeout_s:.0f} s"
            time.sleep(0.2)

    def __enter__(self) -> Self:
        self.thread.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self.stopping.set()
        self.thread.join(timeout=120)
        self.http.close()


@pytest.mark.timeout(480)
def test_neo4j_stopped_under_load_answers_503_with_retry_after_quickly_then_recovers(own_neo4j, api_on_own_neo4j):
    with Load(api_on_own_neo4j, f"load-{uuid.uuid4().hex[:8]}") as load:
        # Up: both routes answer.
        up = time.monotonic()
        load.wait_for(lambda: {route for _, route, status, _, _ in load.since(up) if status == 200} ==
                      {"entities", "recall"}, "200 from both routes", 120)

        own_neo4j.stop()
        down = time.monotonic()
        try:
            # Down: every call is a quick 503 that says when to retry, never a hang or a 500.
            load.wait_for(lambda: len(load.since(down)) >= 10, "10 answers while Neo4j is down", 240)
            outage = load.since(down)
        finally:
            own_neo4j.start()
        assert [(route, status) for _, route, status, _, _ in outage if status != 503] == []
        assert all(retry_after and int(retry_after) > 0 for *_, retry_after in outage)
        assert max(seconds for _, _, _, seconds, _ in outage) < 15, outage

        # Back up: both routes answer again, without a restart of the API.
        back = time.monotonic()
        load.wait_for(lambda: {route for _, route, status, _, _ in load.since(back) if status == 200} ==
                      {"entities", "recall"}, "200 from both routes after Neo4j came back", 120)
    assert load.errors == []
    # Outside the outage, a request that reached Neo4j while it was stopping or still warming up may run past
    # its time limit: that is the documented 504, as retryable as the 503. Never a 500, never a hang.
    assert {status for _, _, status, _, _ in load.answers} <= {200, 503, 504}
