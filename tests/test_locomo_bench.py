"""`kgmem bench locomo` on a tiny LoCoMo-format file written here: real Neo4j, real Chroma, kgmem's scoring
(and the independent scorer only where it is at hand: a fresh clone has none)."""

import json
import os
import subprocess
import sys
import uuid
from datetime import UTC, datetime
from pathlib import Path

import pytest

from api.bench.locomo import (
    METHODS,
    baseline_path,
    batches_of,
    channel_only,
    ingest_sample,
    read_turns,
    run_benchmark,
    space_for,
)
from graph.model import MAX_TEXT_CHARS
from memory.service import MemoryService

KGMEM = str(Path(sys.executable).parent / "kgmem")


def tiny_locomo(suffix: str) -> list[dict]:
    """Two conversations; the second uses sessions 3 and 4 so its dia_ids differ from the first's
    (real LoCoMo samples all start at D1:1), which makes a leak between spaces visible in the rankings."""
    a, b = f"conv-a-{suffix}", f"conv-b-{suffix}"
    return [
        {
            "sample_id": a,
            "conversation": {
                "speaker_a": "Alice", "speaker_b": "Bob",
                "session_1_date_time": "1:56 pm on 8 May, 2023",
                "session_1": [
                    {"speaker": "Alice", "dia_id": "D1:1", "text": "Hi Bob! I just adopted a golden retriever puppy named Biscuit."},
                    {"speaker": "Bob", "dia_id": "D1:2", "text": "Congrats! I spent the weekend repairing my grandfather's old sailboat at the marina."},
                    {"speaker": "Alice", "dia_id": "D1:3", "text": "He already chewed through my running shoes.",
                     "blip_caption": "a dog chewing a sneaker", "img_url": ["http://example.invalid/x.jpg"]},
                    {"speaker": "Bob", "dia_id": "D1:4", "text": "Ha, young dogs do that."},
                ],
                "session_2_date_time": "10:04 am on 19 June, 2023",
                "session_2": [
                    {"speaker": "Alice", "dia_id": "D2:1", "text": "I started cello lessons last week; my teacher trained in Vienna."},
                    {"speaker": "Bob", "dia_id": "D2:2", "text": "I finally sailed the restored boat all the way to Catalina Island."},
                    {"speaker": "Alice", "dia_id": "D2:3", "text": "That sounds amazing!"},
                    {"speaker": "Bob", "dia_id": "D2:4", "text": "Next I want to try scuba diving."},
                ],
            },
            "qa": [
                {"question": "What is the name of Alice's puppy?", "answer": "Biscuit", "evidence": ["D1:1"], "category": 4},
                {"question": "When did Bob sail the boat to Catalina Island?", "answer": "June 2023", "evidence": ["D2:2"], "category": 2},
                {"question": "What has Bob done with his grandfather's sailboat?", "answer": "repaired it and sailed it to Catalina",
                 "evidence": ["D1:2", "D2:2"], "category": 1},
                {"question": "Which instrument might Alice play in an orchestra?", "answer": "cello", "evidence": ["D2:1"], "category": 3},
                {"question": "What is the name of Bob's puppy?", "adversarial_answer": "Biscuit", "evidence": ["D1:1"], "category": 5},
            ],
        },
        {
            "sample_id": b,
            "conversation": {
                "speaker_a": "Carol", "speaker_b": "Dan",
                "session_3_date_time": "9:15 am on 2 March, 2022",
                "session_3": [
                    {"speaker": "Carol", "dia_id": "D3:1", "text": "My puppy Pepper won a blue ribbon at the dog show."},
                    {"speaker": "Dan", "dia_id": "D3:2", "text": "I am baking sourdough bread every morning now."},
                    {"speaker": "Carol", "dia_id": "D3:3", "text": "I photographed the aurora on my trip.",
                     "blip_caption": "green northern lights over a lake in Iceland"},
                    {"speaker": "Dan", "dia_id": "D3:4", "text": "Beautiful."},
                ],
                "session_4_date_time": "7:30 pm on 11 April, 2022",
                "session_4": [
                    {"speaker": "Carol", "dia_id": "D4:1", "text": "I'm training for the Boston marathon."},
                    {"speaker": "Dan", "dia_id": "D4:2", "text": "My sourdough starter is named Clint."},
                    {"speaker": "Carol", "dia_id": "D4:3", "text": "Ha!"},
                    {"speaker": "Dan", "dia_id": "D4:4", "text": "Good luck with the marathon."},
                ],
            },
            "qa": [
                {"question": "What is the name of Carol's puppy?", "answer": "Pepper", "evidence": ["D3:1"], "category": 4},
                {"question": "Where did Carol see the northern lights?", "answer": "Iceland", "evidence": ["D3:3"], "category": 4},
            ],
        },
    ]


def turn_ids(sample: dict) -> set[str]:
    return {t["dia_id"] for key, turns in sample["conversation"].items() if key.startswith("session_")
            and isinstance(turns, list) for t in turns}


def read_rankings(path: Path) -> dict[tuple[str, int], list[str]]:
    lines = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return {(line["sample_id"], line["qa_index"]): line["ranked"] for line in lines}


def delete_spaces(gateway, spaces) -> None:
    for space in spaces:
        gateway.write("MATCH (n {space: $space}) DETACH DELETE n", space=space)


@pytest.fixture
def tiny(tmp_path, gateway):
    data = tiny_locomo(uuid.uuid4().hex[:8])
    path = tmp_path / "tiny_locomo.json"
    path.write_text(json.dumps(data))
    yield data, path
    delete_spaces(gateway, [space_for(sample["sample_id"]) for sample in data])


@pytest.fixture
def memory(settings, gateway, embedder):
    return MemoryService.open(settings, gateway, embedder=embedder)


def observation_count(gateway, space: str) -> int:
    return gateway.rows("MATCH (o:Observation {space: $space}) RETURN count(o) AS n", space=space)[0]["n"]


# -- pure parts --------------------------------------------------------------------------------------

@pytest.mark.parametrize("text, expected", [
    ("1:56 pm on 8 May, 2023", datetime(2023, 5, 8, 13, 56, tzinfo=UTC)),  # LoCoMo's
    ("12:09 am on 13 September, 2023", datetime(2023, 9, 13, 0, 9, tzinfo=UTC)),
    ("2023/05/20 (Sat) 02:21", datetime(2023, 5, 20, 2, 21, tzinfo=UTC)),  # LongMemEval's
    ("29.12.2023, 00:51:12", datetime(2023, 12, 29, 0, 51, 12, tzinfo=UTC)),
])
def test_session_dates_are_read_by_the_products_rules(text, expected):
    sample = {"sample_id": "s", "conversation": {"session_1_date_time": text, "session_1": [
        {"speaker": "A", "dia_id": "D1:1", "text": "hello"}]}}
    assert read_turns(sample).sessions[0][0].valid_from == expected


def test_a_session_without_a_readable_date_is_undated_never_now():
    sample = {"sample_id": "s", "conversation": {
        "session_1_date_time": "sometime last spring", "session_1": [{"speaker": "A", "dia_id": "D1:1", "text": "hi"}],
        "session_2": [{"speaker": "B", "dia_id": "D2:1", "text": "no date at all"}]}}
    read = read_turns(sample)
    assert read.undated_sessions == 2
    assert all(o.undated and o.valid_from is None for session in read.sessions for o in session)


def test_malformed_turns_are_reported_and_the_rest_go_in():
    too_long = "x" * (MAX_TEXT_CHARS + 1)
    sample = {"sample_id": "s", "conversation": {"session_1_date_time": "8 May 2023", "session_1": [
        {"speaker": "A", "dia_id": "D1:1", "text": "fine"}, "not a turn", {"speaker": "B", "text": "no id"},
        {"speaker": "B", "dia_id": "D1:4", "text": too_long}, {"speaker": "A", "dia_id": "D1:5", "text": "also fine"}]}}
    read = read_turns(sample)
    assert [o.ref for o in read.sessions[0]] == ["D1:1", "D1:5"]
    assert read.skipped[0] == "s session 1 turn 1: not an object"
    assert read.skipped[1] == "s session 1 turn 2: no speaker, text or dia_id"
    assert read.skipped[2].startswith("s session 1 turn 3 (D1:4): text: String should have at most")


def test_turns_become_observations_with_provenance():
    sample = tiny_locomo("x")[0]
    batches = read_turns(sample).sessions
    assert [len(batch) for batch in batches] == [4, 4]
    photo = batches[0][2]
    assert photo.text == "He already chewed through my running shoes. [shares a photo: a dog chewing a sneaker]"
    assert (photo.entity.name, photo.entity.kind.value, photo.ref, photo.seq) == ("Alice", "Person", "D1:3", 2)
    assert photo.provenance.source == "conv-a-x/session_1" and photo.provenance.agent == "Alice"
    assert batches[1][1].valid_from == datetime(2023, 6, 19, 10, 4, tzinfo=UTC)
    assert space_for("conv 26/ä") == "locomo-conv-26"


def test_turns_are_written_in_whole_sessions():
    read = read_turns(tiny_locomo("x")[0])
    assert [[o.ref for o in batch] for batch in batches_of(read, 1)] == [
        ["D1:1", "D1:2", "D1:3", "D1:4"], ["D2:1", "D2:2", "D2:3", "D2:4"]]
    assert [len(batch) for batch in batches_of(read, 7)] == [4, 4]
    assert [len(batch) for batch in batches_of(read, 8)] == [8]


@pytest.mark.parametrize("method, channel", [("bm25", "keyword"), ("vector", "vector")])
def test_a_baseline_weighs_one_channel_only(method, channel):
    config = channel_only(channel)
    assert [name for name, weight in config.weights.items() if weight > 0] == [channel]
    assert config.name_matches is False
    assert config.expansion_depth == 0 and config.observations_per_entity == 0


# -- against Neo4j and Chroma ----------------------------------------------------------------------

def test_benchmark_end_to_end(memory, tiny, tmp_path, gateway):
    data, path = tiny
    out = tmp_path / "out" / "rankings.jsonl"
    report = run_benchmark(memory, path, out, k=20)

    # One line per question, for every method, with real dia_ids of the question's own sample only.
    for method in METHODS:
        rankings = read_rankings(baseline_path(out, method))
        assert sorted(rankings) == sorted((s["sample_id"], i) for s in data for i in range(len(s["qa"])))
        for sample in data:
            own = turn_ids(sample)
            for i in range(len(sample["qa"])):
                ranked = rankings[(sample["sample_id"], i)]
                assert ranked, (method, sample["sample_id"], i)
                assert set(ranked) <= own, f"{method}: {sample['sample_id']} question {i} got another sample's turns"
                assert len(ranked) == len(set(ranked)) <= 20
        a, b = data[0]["sample_id"], data[1]["sample_id"]
        assert "D1:1" in rankings[(a, 0)][:5], method  # "What is the name of Alice's puppy?"
        assert "D3:1" in rankings[(b, 0)][:5], method  # "What is the name of Carol's puppy?"
    assert baseline_path(out, "bm25") == tmp_path / "out" / "rankings.bm25.jsonl"

    # The report has what the command prints, as the scorer computed it.
    summary = report.to_dict()
    assert summary["samples"] == [s["sample_id"] for s in data]
    assert summary["questions"] == 7
    assert summary["ingest"]["turns"] == 16 and summary["ingest"]["samples"] == 2
    assert summary["ingest"]["turns_per_s"] > 0 and 0 < summary["ingest"]["embed_share"] < 1
    assert summary["impure_baselines"] == {}
    for method in METHODS:
        numbers = summary["methods"][method]
        assert numbers["questions"] == 7
        assert numbers["missing_answers"] == 0
        assert 0 < numbers["latency_ms"]["p50"] <= numbers["latency_ms"]["p95"]
        assert set(numbers["recall"]) == {"cat1", "cat2", "cat3", "cat4", "cat5", "overall"}
        assert numbers["scores"]["overall"]["n"] == 6  # categories 1-4 of both samples
        assert 0.5 <= numbers["session_recall"]["overall"]["@10"] <= 1.0
        assert numbers["independent_scorer_agrees"] in (True, None)  # None: no scorer beside this checkout
        assert 0.5 <= numbers["recall"]["overall"]["@10"] <= 1.0
        assert numbers["recall"]["cat4"]["@5"] == 1.0
    assert summary["methods"]["bm25"]["channel_hits"].get("keyword", 0) > 0
    assert summary["methods"]["vector"]["channel_hits"].get("vector", 0) > 0


def test_spaces_are_separate_and_reruns_are_clean(memory, tiny, gateway):
    data, _ = tiny
    a, b = (space_for(s["sample_id"]) for s in data)
    first = ingest_sample(memory, data[0], batch_turns=1)  # one call per session
    assert (first.calls, first.turns) == (2, 8)
    ingest_sample(memory, data[1])
    vectors_a = len(memory.index.collection.get(where={"space": a}, include=[])["ids"])
    assert observation_count(gateway, a) == 8 and observation_count(gateway, b) == 8
    assert vectors_a >= 8

    refs = gateway.rows(
        "MATCH (p:Person {space: $space})-[:HAS_OBSERVATION]->(o) RETURN p.name AS who, o.ref AS ref, o.source AS source, "
        "o.seq AS seq, o.agent AS agent, o.valid_from AS at ORDER BY ref", space=a)
    assert [r["ref"] for r in refs] == ["D1:1", "D1:2", "D1:3", "D1:4", "D2:1", "D2:2", "D2:3", "D2:4"]
    first = refs[0]
    assert (first["who"], first["source"], first["seq"], first["agent"]) == ("Alice", f"{data[0]['sample_id']}/session_1", 0, "Alice")
    assert first["at"] == datetime(2023, 5, 8, 13, 56, tzinfo=UTC)
    rels = gateway.rows(
        "MATCH (p:Person {space: $space})-[:PARTICIPATES_IN]->(c:Thing {space: $space}) "
        "RETURN p.name AS who, c.name AS conversation, c.entity_type AS type ORDER BY who", space=a)
    assert [(r["who"], r["conversation"], r["type"]) for r in rels] == [
        ("Alice", data[0]["sample_id"], "conversation"), ("Bob", data[0]["sample_id"], "conversation")]

    # Ingesting A again (in one call this time) wipes A first: the same observations and vectors, B untouched.
    assert ingest_sample(memory, data[0]).calls == 1
    assert observation_count(gateway, a) == 8
    assert len(memory.index.collection.get(where={"space": a}, include=[])["ids"]) == vectors_a
    assert observation_count(gateway, b) == 8


def test_the_cli_runs_end_to_end(managed_neo4j, tiny, tmp_path):
    _, path = tiny
    out = tmp_path / "cli" / "rankings.jsonl"
    env = {**os.environ, "KGMEM_CHROMA_PATH": str(tmp_path / "cli-chroma")}
    result = subprocess.run(
        [KGMEM, "bench", "locomo", "--data", str(path), "--rankings", str(out), "--samples", "1", "--json"],
        capture_output=True, text=True, env=env, timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    summary = json.loads(result.stdout)
    assert len(summary["samples"]) == 1 and summary["questions"] == 5
    for method in METHODS:
        numbers = summary["methods"][method]
        # Scored against the one sample that ran: the other sample's questions are not counted as misses.
        assert numbers["missing_answers"] == 0
        assert numbers["scores"]["overall"]["n"] == 4
        assert 0.0 <= numbers["recall"]["overall"]["@5"] <= numbers["recall"]["overall"]["@10"] <= 1.0
        assert len(read_rankings(baseline_path(out, method))) == 5
    assert summary["methods"]["kgmem"]["recall"]["cat4"]["@5"] == 1.0
