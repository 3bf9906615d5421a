"""Export and import as operators run them: the admin API's jobs (progress, download, upload) on the
live API, and `kgmem export` / `kgmem import PATH` as the real executable."""

from __future__ import annotations

import io
import json
import os
import subprocess
import tarfile
import time
import uuid
from pathlib import Path

import pytest
from cli_helpers import KGMEM, assert_one_error_line
from conftest import delete_space

from graph.model import EntityIn, EntityRef, ObservationIn, RelationIn
from graph.vocabulary import Kind
from memory.recall import RecallQuery
from memory.service import MemoryService
from memory.vectors import open_chroma

FACT = "Retraining on the March snapshot doubled recall"


def seed_through(kg) -> None:
    kg.upsert_entities([EntityIn(kind=Kind.PROJECT, name="Churn model", summary="who leaves"),
                        EntityIn(kind=Kind.AGENT, name="ds-1")])
    kg.add_observations([ObservationIn(entity=EntityRef(kind=Kind.PROJECT, name="Churn model"), text=FACT)])
    kg.upsert_relations([RelationIn(source=EntityRef(name="ds-1"), type="LEADS_ANALYSIS_FOR",
                                    target=EntityRef(name="Churn model"))])


def finished(http, space: str, job_id: str, timeout: float = 180) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        job = http.get(f"/v1/spaces/{space}/admin/jobs/{job_id}").json()
        if job["state"] in ("succeeded", "failed") or time.monotonic() > deadline:
            return job
        time.sleep(0.3)


@pytest.fixture
def target(gateway):
    name = f"test-{uuid.uuid4().hex[:12]}"
    yield name
    delete_space(gateway, name)


# -- the admin API ----------------------------------------------------------------------------------
def test_export_and_import_jobs_report_progress_and_move_a_space_over_the_api(live_api, space, target):
    with live_api.client(space) as kg:
        seed_through(kg)
    token = live_api.token([space, target], ["read", "write", "admin"])
    key_id = live_api.key_ids[-1]
    with live_api.http(token) as http:
        started = http.post(f"/v1/spaces/{space}/admin/export", json={"vectors": True})
        assert started.status_code == 202 and started.json()["kind"] == "export"
        job = finished(http, space, started.json()["id"])
        assert job["state"] == "succeeded", job
        assert job["progress"]["entities"] == {"done": 2, "total": 2}
        assert job["progress"]["relations"]["done"] == job["report"]["counts"]["relations"] > 0
        archive = http.get(job["report"]["download"])
        assert archive.status_code == 200 and archive.headers["content-type"] == "application/gzip"
        with tarfile.open(fileobj=io.BytesIO(archive.content)) as tar:
            assert "manifest.json" in tar.getnames()

        imported = http.post(f"/v1/spaces/{target}/admin/import", content=archive.content,
                             headers={"Content-Type": "application/gzip"})
        assert imported.status_code == 202, imported.text
        job = finished(http, target, imported.json()["id"])
        assert job["state"] == "succeeded", job
        assert job["report"]["created"]["entities"] == 2 and job["report"]["vectors"] == "copied"
        assert job["progress"]["observations"] == {"done": 1, "total": 1}
        hits = http.post(f"/v1/spaces/{target}/recall", json={"text": "what doubled recall?"}).json()["items"]
        assert hits[0]["text"] == FACT
        # The trail says who imported, with what it created; the archive's own events came with it.
        trail = http.get(f"/v1/spaces/{target}/audit", params={"limit": 100}).json()["items"]
        (event,) = [e for e in trail if e["operation"] == "import_archive"]
        assert event["key_id"] == key_id and event["detail"]["created"]["entities"] == 2

        again = http.post(f"/v1/spaces/{target}/admin/import", content=archive.content)
        assert again.status_code == 409 and "merge" in again.json()["detail"]
        merged = http.post(f"/v1/spaces/{target}/admin/import", params={"merge": "true"}, content=archive.content)
        assert merged.status_code == 202
        job = finished(http, target, merged.json()["id"])
        assert job["state"] == "succeeded" and sum(job["report"]["created"].values()) == 0, job


def test_the_import_route_refuses_malformed_and_oversized_archives(live_api, target):
    with live_api.http(live_api.token([target], ["admin"])) as http:
        junk = http.post(f"/v1/spaces/{target}/admin/import", content=b"not a tar.gz")
        assert junk.status_code == 422 and "not a readable .tar.gz" in junk.json()["detail"]
        buffer = io.BytesIO()
        with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
            manifest = json.dumps({"format": "kgmem-export", "format_version": 99}).encode()
            info = tarfile.TarInfo("manifest.json")
            info.size = len(manifest)
            tar.addfile(info, io.BytesIO(manifest))
        wrong_version = http.post(f"/v1/spaces/{target}/admin/import", content=buffer.getvalue())
        assert wrong_version.status_code == 422 and "format_version 99" in wrong_version.json()["detail"]
        too_big = http.post(f"/v1/spaces/{target}/admin/import",
                            content=b"x" * (live_api.settings.api_max_body_bytes + 1))
        assert too_big.status_code == 413
        assert not list((Path(live_api.settings.home) / "imports").glob("*"))  # no upload left behind


def test_only_a_finished_export_can_be_downloaded(live_api, space):
    with live_api.http(live_api.token([space], ["read", "write", "admin"])) as http:
        reindex = http.post(f"/v1/spaces/{space}/admin/reindex").json()
        assert http.get(f"/v1/spaces/{space}/admin/exports/{reindex['id']}").status_code == 404
        assert http.get(f"/v1/spaces/{space}/admin/exports/no-such-job").status_code == 404


# -- the command line -------------------------------------------------------------------------------
def kgmem(chroma: Path, *args: str) -> subprocess.CompletedProcess:
    # The environment carries the test session's KGMEM_HOME, so the CLI finds its managed Neo4j.
    env = {**os.environ, "KGMEM_CHROMA_PATH": str(chroma)}
    return subprocess.run([KGMEM, *args], check=False, capture_output=True, text=True, env=env, timeout=600)


def test_kgmem_export_and_import_a_space(managed_neo4j, gateway, settings, embedder, space, target, tmp_path):
    memory = MemoryService.open(settings, gateway, embedder=embedder, chroma=open_chroma(settings))
    seed_through(memory.space(space).graph)
    memory.sync.process_pending(space=space)
    archive = tmp_path / "churn.tar.gz"

    exported = kgmem(settings.chroma_path, "export", "--space", space, "--out", str(archive), "--gzip", "--vectors")
    assert exported.returncode == 0, exported.stderr[-3000:]
    assert f"Exported space {space} to {archive}" in exported.stdout and archive.is_file()

    refused = kgmem(settings.chroma_path, "import", str(archive), "--space", space)
    assert "already holds data" in assert_one_error_line(refused) and "--merge" in refused.stderr

    imported = kgmem(settings.chroma_path, "import", str(archive), "--space", target, "--json")
    assert imported.returncode == 0, imported.stderr[-3000:]
    report = json.loads(imported.stdout)
    assert report["source_space"] == space and report["created"]["entities"] == 2 and report["vectors"] == "copied"
    found = MemoryService.open(settings, gateway, embedder=embedder, chroma=open_chroma(settings)).space(target).recall(
        RecallQuery(text="what doubled recall?", limit=3))
    assert found.items[0].text == FACT

    merged = kgmem(settings.chroma_path, "import", str(archive), "--space", target, "--merge")
    assert merged.returncode == 0, merged.stderr[-3000:]
    assert "(merge)" in merged.stdout

    damaged = tmp_path / "damaged.tar.gz"
    damaged.write_bytes(archive.read_bytes()[:200])
    assert "not a readable .tar.gz" in assert_one_error_line(kgmem(settings.chroma_path, "import", str(damaged),
                                                                   "--space", target))
    # A subcommand's name is still a subcommand, not a path.
    assert "--tracking-uri" in kgmem(settings.chroma_path, "import", "mlflow", "--help").stdout
