"""Two replicas on shared servers: one Neo4j, one Chroma server, two `kgmem serve` processes.

The API keeps no state of its own that matters: whatever one replica writes or remembers (an
Idempotency-Key's answer) lives in Neo4j, so the other sees it. What must not run twice at once,
the reconcile of the vector index, takes a lease in Neo4j: of the replicas sharing a store one
reconciles, the others skip.
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
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from api_server import ALL_SCOPES
from cli_helpers import KGMEM

from api.auth import KeyStore
from graph import Settings
from graph.errors import Conflict
from graph.model import EntityIn
from graph.neo4j_server.server import free_port
from graph.vocabulary import Kind
from memory import service
from memory.lease import ReconcileLease, lease_name
from memory.service import MemoryService
from memory.sync import MARK_ENTITIES_PENDING

LEASE_NODES = "MATCH (l:ReconcileLease {name: $name}) RETURN l.owner AS owner, toString(l.until) AS until"


@pytest.fixture
def lease(gateway) -> Iterator[str]:
    """A lease name of the test's own; its node is removed afterwards."""
    name = f"test-lease-{uuid.uuid4().hex[:12]}"
    yield name
    gateway.write("MATCH (l:ReconcileLease {name: $name}) DELETE l", name=name)


def race(contenders: list[ReconcileLease]) -> list:
    """Every contender takes the lease at the same moment; what each `take` answered, in order."""
    barrier = threading.Barrier(len(contenders))

    def take(contender: ReconcileLease):
        barrier.wait(timeout=30)
        return contender.take()

    with ThreadPoolExecutor(len(contenders)) as pool:
        return list(pool.map(take, contenders, timeout=60))


# -- the lease ------------------------------------------------------------------------------------------------
def test_of_two_contenders_exactly_one_gets_the_lease(gateway, lease):
    # Even rounds race for a new lease (creating its node), odd ones for a lease whose holder died.
    for round_ in range(20):
        name = f"{lease}-{round_}"
        try:
            if round_ % 2:
                assert ReconcileLease(gateway, name, owner="replica-that-died", term_s=0.001).take() is None
                time.sleep(0.05)  # its term has passed
            a, b = (ReconcileLease(gateway, name, owner=f"replica-{who}") for who in "ab")
            answers = race([a, b])
            winners = [contender.owner for contender, answer in zip((a, b), answers) if answer is None]
            assert len(winners) == 1, answers
            loser_saw = next(answer for answer in answers if answer is not None)
            assert loser_saw.owner == winners[0]  # the loser is told who holds it
            nodes = gateway.rows(LEASE_NODES, name=name)
            assert [node["owner"] for node in nodes] == winners  # one node, the winner's
        finally:
            gateway.write("MATCH (l:ReconcileLease {name: $name}) DELETE l", name=name)


def test_a_held_lease_is_refused_until_its_holder_releases_it(gateway, lease):
    holder = ReconcileLease(gateway, lease, owner="replica-a")
    other = ReconcileLease(gateway, lease, owner="replica-b")
    assert holder.take() is None
    assert other.take().owner == "replica-a"
    holder.release()
    assert other.take() is None
    assert gateway.rows(LEASE_NODES, name=lease)[0]["owner"] == "replica-b"


def test_an_expired_lease_is_taken_over_and_its_old_holder_cannot_renew_it(gateway, lease):
    dead = ReconcileLease(gateway, lease, owner="replica-that-died", term_s=0.5)
    other = ReconcileLease(gateway, lease, owner="replica-b")
    assert dead.take() is None
    assert other.take() is not None  # still within its term
    deadline = time.monotonic() + 10
    while (taken := other.take()) is not None and time.monotonic() < deadline:
        time.sleep(0.2)
    assert taken is None, "the lapsed lease was not taken over"
    assert not dead.renew()
    assert gateway.rows(LEASE_NODES, name=lease)[0]["owner"] == "replica-b"


def test_a_holder_keeps_its_lease_renewed_while_it_works_and_releases_it_at_the_end(gateway, lease):
    worker = ReconcileLease(gateway, lease, owner="replica-a", term_s=0.6)
    other = ReconcileLease(gateway, lease, owner="replica-b")
    with worker.held() as holder:
        assert holder is None
        time.sleep(2.0)  # more than three terms: only renewals keep it
        assert other.take().owner == "replica-a"
    assert gateway.rows(LEASE_NODES, name=lease)[0]["owner"] is None
    assert other.take() is None


def test_a_reconcile_that_finds_the_lease_held_skips_and_leaves_the_work_to_the_holder(settings, gateway, embedder,
                                                                                         space, monkeypatch):
    memory = MemoryService.open(settings, gateway, embedder=embedder)
    memory.space(space).graph.upsert_entities([EntityIn(kind=Kind.PROJECT, name="Churn model")])
    ids = [r["id"] for r in gateway.rows("MATCH (e:Entity {space: $space}) RETURN e.id AS id", space=space)]
    gateway.write(MARK_ENTITIES_PENDING, ids=ids)  # as a crash between the Neo4j commit and Chroma leaves it
    assert memory.sync.pending_count(space) == 1
    name = lease_name(memory.index.store, memory.index.collection.name)
    other_replica = ReconcileLease(gateway, name, owner="the-other-replica")
    assert other_replica.take() is None
    try:
        report = memory.reconcile()
        assert report.skipped is not None and "the-other-replica" in report.skipped
        assert report.embedded == 0
        assert memory.sync.pending_count(space) == 1  # left to the holder
        # A full rebuild is not the holder's work: it waits a while for the lease, then refuses, naming the holder.
        monkeypatch.setattr(service, "FULL_WAITS_S", 1.0)
        began = time.monotonic()
        with pytest.raises(Conflict, match="the full reindex did not run: the-other-replica holds"):
            memory.reconcile(full=True)
        assert time.monotonic() - began >= 1.0
    finally:
        other_replica.release()
    try:
        report = memory.reconcile()
        assert report.skipped is None
        assert memory.sync.pending_count(space) == 0
        assert gateway.rows(LEASE_NODES, name=name)[0]["owner"] is None  # released at the end
    finally:
        gateway.write("MATCH (l:ReconcileLease {name: $name}) DELETE l", name=name)


# -- two `kgmem serve` on one Neo4j and one Chroma server -----------------------------------------------------
WRITERS = 4
PER_WRITER = 25
ENTITY = {"name": "Two replicas", "kind": "Project"}
SHARED = "Every writer saw the same thing"


class Replica:
    def __init__(self, name: str, process: subprocess.Popen, port: int) -> None:
        self.name = name
        self.process = process
        self.base_url = f"http://127.0.0.1:{port}"
        self.lines: list[str] = []
        threading.Thread(target=lambda: self.lines.extend(process.stdout), daemon=True).start()

    def http(self, token: str) -> httpx.Client:
        return httpx.Client(base_url=self.base_url, headers={"Authorization": f"Bearer {token}"}, timeout=120)

    def wait_ready(self, deadline: float) -> None:
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                time.sleep(0.5)
                raise AssertionError(f"replica {self.name} exited early: {''.join(self.lines)}")
            try:
                if httpx.get(f"{self.base_url}/readyz", timeout=5).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(1)
        raise AssertionError(f"replica {self.name} did not become ready: {''.join(self.lines)}")

    def stop(self) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
        try:
            return self.process.wait(timeout=120)
        except subprocess.TimeoutExpired:
            self.process.kill()
            return self.process.wait(timeout=30)


def start_replica(name: str, home: Path, neo4j_server, chroma_server: tuple[str, int], secret: str) -> Replica:
    """`kgmem serve` with a home of its own, on the suite's Neo4j and the one Chroma server."""
    port = free_port()
    host, chroma_port = chroma_server
    env = {**os.environ, "KGMEM_HOME": str(home), "NEO4J_URI": neo4j_server.uri,
           "NEO4J_USERNAME": neo4j_server.username, "NEO4J_PASSWORD": neo4j_server.password,
           "NEO4J_DATABASE": neo4j_server.database, "KGMEM_CHROMA_HOST": host, "KGMEM_CHROMA_PORT": str(chroma_port),
           "KGMEM_API_KEY_SECRET": secret, "KGMEM_API_RATE_LIMIT_PER_MINUTE": "0"}
    env.pop("KGMEM_AUTH_DISABLED", None)
    process = subprocess.Popen([KGMEM, "serve", "--port", str(port), "--log-level", "warning"], env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    return Replica(name, process, port)


@pytest.fixture
def replicas(neo4j_server, gateway, chroma_server, tmp_path, space) -> Iterator[tuple[Replica, Replica, str]]:
    """Two replicas sharing one API-key secret, and a token for the test's space that both accept."""
    secret = secrets.token_urlsafe(32)
    keys = KeyStore(gateway, settings=Settings(api_key_secret=secret), secret=secret.encode())
    key, token = keys.create("two replicas", ALL_SCOPES, [space])  # before the replicas start: no bootstrap key
    started = [start_replica(name, tmp_path / name, neo4j_server, chroma_server, secret) for name in ("a", "b")]
    try:
        deadline = time.monotonic() + 300
        for replica in started:
            replica.wait_ready(deadline)
        yield started[0], started[1], token
    finally:
        exit_codes = [replica.stop() for replica in started]
        gateway.write("MATCH (k:ApiKey {key_id: $id}) DETACH DELETE k", id=key.key_id)
    assert exit_codes == [0, 0]


def observations(gateway, space: str) -> list[str]:
    return [row["text"] for row in gateway.rows(
        "MATCH (:Entity {space: $space})-[:HAS_OBSERVATION]->(o:Observation) WHERE o.retracted_at IS NULL "
        "RETURN o.text AS text", space=space)]


def recalled(http: httpx.Client, space: str, text: str) -> bool:
    answer = http.post(f"/v1/spaces/{space}/recall", json={"text": text, "limit": 5})
    assert answer.status_code == 200, answer.text
    return any(item["text"] == text for item in answer.json()["items"])


@pytest.mark.timeout(900)
def test_two_replicas_share_writes_recall_idempotency_and_one_reconcile(replicas, gateway, chroma_server, space):
    a, b, token = replicas
    host, port = chroma_server

    # Both started and reconciled the one Chroma server's collection under its lease, each in turn, and
    # released it: its node is there and free (a start-up reconcile may still be ending; it is short).
    deadline = time.monotonic() + 120
    while True:
        leases = gateway.rows("MATCH (l:ReconcileLease) WHERE l.name STARTS WITH $store "
                              "RETURN l.owner AS owner", store=f"vectors http://{host}:{port} ")
        if (len(leases) == 1 and leases[0]["owner"] is None) or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert leases == [{"owner": None}]

    # Writers through both replicas at once: each observation once, the one they all write once too.
    texts = {w: [f"Replica check {uuid.uuid4().hex[:10]}: writer {w} recorded finding {n}" for n in range(PER_WRITER)]
             for w in range(WRITERS)}
    barrier = threading.Barrier(WRITERS)

    def write(w: int) -> list[int]:
        statuses = []
        with (a if w % 2 == 0 else b).http(token) as http:
            barrier.wait(timeout=60)
            for n, text in enumerate(texts[w]):
                body = {"observations": [{"entity": ENTITY, "text": text}] + ([{"entity": ENTITY, "text": SHARED}]
                                                                                if n == 0 else []),
                        "create_missing": True}
                statuses.append(http.post(f"/v1/spaces/{space}/observations", json=body).status_code)
        return statuses

    with ThreadPoolExecutor(WRITERS) as pool:
        statuses = [status for answer in pool.map(write, range(WRITERS), timeout=600) for status in answer]
    assert statuses == [200] * (WRITERS * PER_WRITER)
    written = [text for w in range(WRITERS) for text in texts[w]]
    assert sorted(observations(gateway, space)) == sorted([*written, SHARED])  # nothing lost, nothing twice
    entities = gateway.rows("MATCH (e:Entity {space: $space}) RETURN e.name AS name", space=space)
    assert entities == [{"name": ENTITY["name"]}]

    # The vectors followed every write, whichever replica took it.
    with a.http(token) as http:
        deadline = time.monotonic() + 120
        while (stats := http.get(f"/v1/spaces/{space}/admin/stats").json())["pending"] and time.monotonic() < deadline:
            time.sleep(0.5)
        assert stats["pending"] == 0, stats

    # Every write is found by recall through either replica.
    with a.http(token) as http_a, b.http(token) as http_b:
        for text in written:
            assert recalled(http_a, space, text), f"replica a did not recall {text!r}"
            assert recalled(http_b, space, text), f"replica b did not recall {text!r}"

        # An Idempotency-Key sent to replica a and retried at replica b gets a's answer, and writes nothing more.
        key = str(uuid.uuid4())
        body = {"observations": [{"entity": ENTITY, "text": "Written once though sent twice"}]}
        path = f"/v1/spaces/{space}/observations"
        first = http_a.post(path, json=body, headers={"Idempotency-Key": key})
        retry = http_b.post(path, json=body, headers={"Idempotency-Key": key})
    assert first.status_code == retry.status_code == 200, (first.text, retry.text)
    assert retry.json() == first.json()
    assert retry.headers["idempotent-replayed"] == "true"
    assert "idempotent-replayed" not in first.headers
    assert observations(gateway, space).count("Written once though sent twice") == 1
