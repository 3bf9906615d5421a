"""The audit trail: every write says who made it (key, agent, delegation), when, how and on which ids;
the route and `kgmem audit` answer who changed an entity and when."""

from __future__ import annotations

import json
import os
import subprocess

import pytest
from cli_helpers import KGMEM, assert_one_error_line

from graph.model import EntityIn, EntityRef, ObservationIn, Provenance
from graph.vocabulary import Kind


def kgmem(*args: str) -> subprocess.CompletedProcess:
    # The environment carries the test session's KGMEM_HOME, so the CLI finds its managed Neo4j; a wide
    # terminal keeps each table row on one line.
    return subprocess.run([KGMEM, *args], capture_output=True, text=True, env={**os.environ, "COLUMNS": "300"},
                          timeout=300, check=False)


@pytest.fixture
def keys(live_api, space):
    """Two writers and an admin (who alone may read the trail), each its own key."""
    a, b = (live_api.token([space], ["read", "write"], name=n) for n in ("writer a", "writer b"))
    admin = live_api.token([space], ["admin"], name="auditor")
    ids = {token: token.split("_")[1] for token in (a, b, admin)}
    return a, b, admin, ids


def test_the_audit_route_and_command_say_who_changed_an_entity_and_when(live_api, space, keys):
    a, b, admin, key_id = keys
    with live_api.client(space, token=a) as first:
        (created,) = first.upsert_entities([EntityIn(kind=Kind.PROJECT, name="Heron", summary="a forecast")])
    with live_api.client(space, token=b) as second:
        second.upsert_entities([EntityIn(kind=Kind.PROJECT, name="Heron", summary="a demand forecast",
                                         provenance=Provenance(agent="ds-7", delegation_id="d-42"))])
        (note,) = second.add_observations([ObservationIn(entity=EntityRef(id=created.id), text="Backtest done")])

    with live_api.http(admin) as http:
        page = http.get(f"/v1/spaces/{space}/audit", params={"entity_id": created.id}).json()
    events = page["items"]
    assert [(e["key_id"], e["operation"]) for e in events] == [
        (key_id[b], "add_observations"), (key_id[b], "upsert_entities"), (key_id[a], "upsert_entities")]
    assert events[0]["at"] > events[1]["at"] > events[2]["at"]  # newest first
    assert note.id in events[0]["ids"] and created.id in events[0]["ids"]
    assert (events[1]["agent"], events[1]["delegation_id"]) == ("ds-7", "d-42")  # the write's own provenance
    assert (events[2]["agent"], events[2]["delegation_id"]) == (None, None)
    assert events[2]["ids"] == [created.id] and events[2]["detail"] == {"entities": 1}

    with live_api.http(admin) as http:
        by_key = http.get(f"/v1/spaces/{space}/audit", params={"key_id": key_id[a]}).json()["items"]
        since = http.get(f"/v1/spaces/{space}/audit", params={"since": events[1]["at"]}).json()["items"]
        first_page = http.get(f"/v1/spaces/{space}/audit", params={"limit": 2}).json()
        second_page = http.get(f"/v1/spaces/{space}/audit",
                               params={"limit": 2, "cursor": first_page["next_cursor"]}).json()
    assert [e["id"] for e in by_key] == [events[2]["id"]]
    assert [e["id"] for e in since] == [events[0]["id"], events[1]["id"]]
    assert [e["id"] for e in first_page["items"] + second_page["items"]] == [e["id"] for e in events]
    assert second_page["next_cursor"] is None

    # The command line says the same, by name, as a table and as JSON Lines (the export).
    exported = kgmem("audit", "--space", space, "--entity", "heron", "--format", "jsonl")
    assert exported.returncode == 0, exported.stderr[-3000:]
    lines = [json.loads(line) for line in exported.stdout.splitlines()]
    assert [(e["id"], e["key_id"], e["at"][:19]) for e in lines] == [
        (e["id"], e["key_id"], e["at"][:19]) for e in events]
    table = kgmem("audit", "--space", space, "--entity", created.id, "--key", key_id[b])
    assert table.returncode == 0, table.stderr[-3000:]
    assert table.stdout.count(key_id[b]) == 2 and key_id[a] not in table.stdout
    assert "add_observations" in table.stdout and "ds-7" in table.stdout


def test_the_trail_is_admin_only_and_refuses_bad_input_by_name(live_api, space, keys):
    a, _, admin, _ = keys
    with live_api.http(a) as http:
        refused = http.get(f"/v1/spaces/{space}/audit")
    assert refused.status_code == 403 and "admin" in refused.json()["detail"]
    with live_api.http(admin) as http:
        bad_date = http.get(f"/v1/spaces/{space}/audit", params={"since": "the day before yesterday-ish"})
        bad_cursor = http.get(f"/v1/spaces/{space}/audit", params={"cursor": "not-a-cursor"})
    assert bad_date.status_code == 422 and "since" in json.dumps(bad_date.json()["errors"])
    assert bad_cursor.status_code == 422 and "cursor" in bad_cursor.json()["detail"]
    assert_one_error_line(kgmem("audit", "--space", space, "--since", "not a date"))


def test_cli_writes_are_the_cli_s_and_a_rolled_back_write_leaves_no_event(graph, gateway):
    from graph.audit import actor, audit_page

    with actor(key_id="cli", operation="cli:import mlflow"):
        (entity,) = graph.upsert_entities([EntityIn(kind=Kind.DATASET, name="orders")])
    with pytest.raises(RuntimeError), actor(key_id="cli", operation="doomed"):
        graph.write(lambda w: (w.upsert_entities([EntityIn(kind=Kind.DATASET, name="refunds")]),
                               (_ for _ in ()).throw(RuntimeError("the write fails after its changes"))))
    events = audit_page(gateway, graph.space)
    assert [(e.key_id, e.operation, e.ids) for e in events] == [("cli", "cli:import mlflow", [entity.id])]
