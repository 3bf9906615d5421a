"""The vector index under faults, with real parts: a `kgmem serve` (uvicorn in a thread) and the real `kgmem`
executable on one embedded Chroma directory, which is rebuilt, corrupted and removed under the server.

Chroma only holds what can be rebuilt from Neo4j, so no fault of it may leave the server broken: each
turns into a clear answer (503 naming the fix, a degraded /readyz, a `degraded` note on recall) and
heals, by itself or by `kgmem reindex --full`, without a restart. Each test is bounded in time.
"""

from __future__ import annotations

import os
import random
import shutil
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import httpx
import pytest
from api_server import api_settings, serve
from cli_helpers import KGMEM

from graph import Settings
from graph.model import EntityIn, EntityRef, ObservationIn
from graph.neo4j_server.server import free_port
from graph.vocabulary import Kind
from memory.index import VectorIndex
from memory.recall import RecallQuery
from memory.service import MemoryService
from memory.sync import MARK_OBSERVATIONS_PENDING
from memory.vectors import open_chroma

OBSERVATION = {"entity": {"name": "Forecast", "kind": "Project"},
               "text": "The holiday spike breaks the weekly baseline of the forecast"}
LATER = {"entity": {"name": "Forecast", "kind": "Project"}, "text": "Retraining weekly fixed the drift"}
QUESTION = {"text": "why does the seasonal peak ruin the weekly model?", "limit": 5}


def kgmem(settings: Settings, *args: str) -> subprocess.CompletedProcess:
    """The real CLI on the server's Chroma directory (the environment carries the session's Neo4j)."""
    env = {**os.environ, "KGMEM_CHROMA_PATH": str(settings.chroma_dir)}
    return subprocess.run([KGMEM, *args], capture_output=True, text=True, env=env, timeout=300)


@pytest.fixture
def server(managed_neo4j, neo4j_server, gateway, embedder, tmp_path, space):
    settings = api_settings(neo4j_server, tmp_path / "home", api_rate_limit_per_minute=0)
    with serve(settings, gateway, embedder) as live:
        yield live


@pytest.fixture
def http(server, space):
    """The server's HTTP API for the test's space, with its first observation written and indexed."""
    with server.http(server.token([space])) as client:
        written = client.post(f"/v1/spaces/{space}/observations", json={"observations": [OBSERVATION],
                                                                         "create_missing": True})
        assert written.status_code == 200, written.text
        yield client


def recall(http, space: str) -> dict:
    response = http.post(f"/v1/spaces/{space}/recall", json=QUESTION)
    assert response.status_code == 200, response.text
    return response.json()


def found_by_meaning(answer: dict) -> bool:
    """Whether recall found the observation by its vector (its words are not in the question)."""
    return any(item["text"] == OBSERVATION["text"] and "vector" in item["channels"] for item in answer["items"])


def stats(http, space: str) -> dict:
    response = http.get(f"/v1/spaces/{space}/admin/stats")
    assert response.status_code == 200, response.text
    return response.json()


def garble(path: Path) -> None:
    """Write garbage over a file in place, as a bad disk or a stray write would."""
    with path.open("r+b") as file:
        file.write(random.Random(7).randbytes(path.stat().st_size))


def readyz_says(http, status: str, timeout_s: float = 120.0):
    """/readyz's answer once its status is `status` (a state the server reaches by itself)."""
    deadline = time.monotonic() + timeout_s
    while (response := http.get("/readyz")).json()["status"] != status:
        assert time.monotonic() < deadline, f"/readyz not {status!r} within {timeout_s:.0f} s: {response.json()}"
        time.sleep(0.5)
    return response


@pytest.mark.timeout(600)
def test_a_full_reindex_beside_a_running_server_leaves_it_working(server, http, space):
    assert found_by_meaning(recall(http, space))

    result = kgmem(server.settings, "reindex", "--full")
    assert result.returncode == 0, result.stderr[-3000:]

    # The same server, not restarted: recall and stats answer from the rebuilt index ...
    answer = recall(http, space)
    assert found_by_meaning(answer) and answer["degraded"] == []
    assert stats(http, space)["vectors"] >= 2
    # ... and a new write gets its vectors there.
    assert http.post(f"/v1/spaces/{space}/observations", json={"observations": [LATER]}).status_code == 200
    after = stats(http, space)
    assert after["pending"] == 0 and after["vectors"] >= 3
    assert http.get("/readyz").json()["status"] == "ready"


@pytest.mark.timeout(600)
def test_a_corrupted_store_answers_503_naming_the_fix_and_a_full_reindex_heals_it(server, http, space):
    chroma = server.settings.chroma_dir
    garble(chroma / "chroma.sqlite3")

    # Memory routes: 503 naming the way out, not 500.
    for response in (http.post(f"/v1/spaces/{space}/recall", json=QUESTION),
                     http.get(f"/v1/spaces/{space}/admin/stats")):
        assert response.status_code == 503, response.text
        problem = response.json()
        assert problem["type"] == "urn:kgmem:problem:index-corrupt"
        assert "damaged" in problem["detail"] and "kgmem reindex --full" in problem["detail"]
    # A write still commits to Neo4j, the truth; its vectors wait for the repair.
    assert http.post(f"/v1/spaces/{space}/observations", json={"observations": [LATER]}).status_code == 200
    ready = http.get("/readyz")
    assert ready.status_code == 503 and ready.json()["not_ready"] == ["chroma"]
    assert "damaged" in ready.json()["checks"]["chroma"] and "kgmem reindex --full" in ready.json()["checks"]["chroma"]

    # A plain reindex cannot repair it: one line that names the fix.
    plain = kgmem(server.settings, "reindex")
    assert plain.returncode == 1 and "Traceback" not in plain.stderr
    assert "kgmem reindex --full" in plain.stderr

    result = kgmem(server.settings, "reindex", "--full")
    assert result.returncode == 0, result.stderr[-3000:]
    kept = [path for path in chroma.parent.iterdir() if path.name.startswith("chroma.damaged-")]
    assert len(kept) == 1 and (kept[0] / "chroma.sqlite3").is_file()  # moved aside, not deleted
    assert str(kept[0]) in " ".join(result.stderr.split())

    # The same server follows the rebuilt store: ready, recall by meaning, every item indexed.
    assert http.get("/readyz").json()["status"] == "ready"
    assert found_by_meaning(recall(http, space))
    after = stats(http, space)
    assert after["pending"] == 0 and after["vectors"] >= 3


@pytest.mark.timeout(600)
def test_a_removed_store_is_rebuilt_by_the_server_itself(server, http, space):
    shutil.rmtree(server.settings.chroma_dir)

    # Writes go on (into a new store), and the server rebuilds the rest from Neo4j in the background.
    assert http.post(f"/v1/spaces/{space}/observations", json={"observations": [LATER]}).status_code == 200
    readyz_says(http, "ready")
    assert (server.settings.chroma_dir / "chroma.sqlite3").is_file()
    assert found_by_meaning(recall(http, space))
    after = stats(http, space)
    assert after["pending"] == 0 and after["vectors"] >= 3


@pytest.mark.timeout(600)
def test_a_rebuild_under_way_is_reported_by_readyz_and_on_recall(server, http, space, embedder, gateway):
    # A rebuild from zero in another process, caught midway: the collection emptied and marked, the items pending.
    index = VectorIndex(open_chroma(server.settings), embedder.name, embedder.dimension)
    index.drop()
    pending = [row["id"] for row in gateway.rows("MATCH (o:Observation {space: $space}) RETURN o.id AS id", space=space)]
    gateway.write(MARK_OBSERVATIONS_PENDING, ids=pending)

    ready = readyz_says(http, "degraded", timeout_s=10)
    assert ready.status_code == 200  # it serves
    body = ready.json()
    assert body["degraded"] == ["vectors"] and body["not_ready"] == []
    assert "being rebuilt from Neo4j" in body["checks"]["vectors"] and "items still without vectors" in body["checks"]["vectors"]
    answer = recall(http, space)
    assert answer["items"]  # keywords, names and the graph still answer
    assert [note.split(":")[0] for note in answer["degraded"]] == ["vectors"]
    assert "being rebuilt" in answer["degraded"][0]

    # Finishing it (here a plain reindex, as a restart's reconcile would) clears both.
    assert kgmem(server.settings, "reindex").returncode == 0
    readyz_says(http, "ready", timeout_s=10)
    answer = recall(http, space)
    assert answer["degraded"] == [] and found_by_meaning(answer)


REBUILDER = textwrap.dedent("""
    import random, sys
    from graph import Settings
    from memory.index import VectorIndex, VectorItem
    from memory.vectors import open_chroma

    path, first, last, step = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
    index = VectorIndex(open_chroma(Settings(chroma_path=path)), "probe-model", 8)
    if step == "start":
        index.drop()
    items = [VectorItem(id=f"obs:{n}", space="s", type="observation", text="", entity_id="e", kind="Project",
                        valid_from=0.0) for n in range(first, last)]
    index.upsert(items, [[random.Random(n * 8 + d).random() for d in range(8)] for n in range(first, last)])
    if step == "finish":
        index.finish_rebuild()
""")


def test_a_reader_sees_all_of_an_index_another_process_rebuilt_while_it_read(tmp_path):
    """Chroma's embedded client keeps each HNSW index in memory and does not look at other processes'
    writes when it reads: a server that read the index midway through a CLI's rebuild would miss the rest."""
    path = tmp_path / "chroma"

    def rebuilder(first: int, last: int, step: str) -> None:
        subprocess.run([sys.executable, "-c", REBUILDER, str(path), str(first), str(last), step], check=True,
                       timeout=120, cwd=Path(__file__).resolve().parents[1])

    def vector(n: int) -> list[float]:  # as the rebuilder makes it
        return [random.Random(n * 8 + d).random() for d in range(8)]

    rebuilder(0, 10, "")
    reader = VectorIndex(open_chroma(Settings(chroma_path=path)), "probe-model", 8)
    assert reader.nearest(vector(5), 1) == ["obs:5"]

    rebuilder(100, 150, "start")  # the old collection dropped, half of the new one written
    time.sleep(1.1)  # the reader looks at most once a second
    assert reader.nearest(vector(120), 1) == ["obs:120"]
    assert reader.rebuilding_since() is not None
    rebuilder(150, 300, "finish")
    time.sleep(1.1)
    assert reader.nearest(vector(250), 1) == ["obs:250"]
    assert reader.rebuilding_since() is None
    assert reader.count() == 200


@pytest.mark.timeout(240)
def test_recall_answers_without_its_vector_channels_while_a_chroma_server_is_down(settings, gateway, embedder, space,
                                                                                    tmp_path):
    chroma = shutil.which("chroma", path=str(Path(sys.executable).parent)) or shutil.which("chroma")
    port = free_port()
    process = subprocess.Popen([chroma, "run", "--path", str(tmp_path / "server"), "--host", "127.0.0.1",
                                "--port", str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/api/v2/heartbeat", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert process.poll() is None and time.monotonic() < deadline, "`chroma run` did not come up"
            time.sleep(0.3)
        memory = MemoryService.open(settings.model_copy(update={"chroma_host": "127.0.0.1", "chroma_port": port}),
                                    gateway, embedder=embedder).space(space)
        memory.graph.upsert_entities([EntityIn(kind=Kind.PROJECT, name="Forecast")])
        memory.graph.add_observations([ObservationIn(entity=EntityRef(name="Forecast", kind=Kind.PROJECT),
                                                     text=OBSERVATION["text"])])
        assert memory.recall(RecallQuery(text=QUESTION["text"])).degraded == []
    finally:
        process.terminate()
        process.wait(timeout=30)

    answer = memory.recall(RecallQuery(text="the weekly baseline of the forecast"))
    assert OBSERVATION["text"] in [item.text for item in answer.items]  # found by its words
    assert not {"vector", "vector_window"} & set(answer.channel_hits)
    assert answer.degraded == ["vectors: Chroma cannot be reached right now; retry later; "
                               "this answer comes from keywords, names and the graph only"]
