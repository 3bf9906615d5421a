"""kgmem's scoring of conversational-recall rankings (api/bench/scoring.py), on cases worked by hand."""

from api.bench.scoring import evidence_ids, score

DATA = [{
    "sample_id": "s1",
    "conversation": {
        "session_1": [{"dia_id": f"D1:{i}"} for i in range(1, 4)],
        "session_2": [{"dia_id": f"D2:{i}"} for i in range(1, 4)],
    },
    "qa": [
        {"question": "q0", "evidence": ["D1:1", "D2:2"], "category": 1},
        {"question": "q1", "evidence": ["D2:3"], "category": 4},
        {"question": "q2", "evidence": ["D9:9"], "category": 4},  # names no turn: not scored
        {"question": "q3", "evidence": ["D1:2"], "category": 5},  # adversarial: apart from overall
    ],
}]


def test_evidence_quirks_are_repaired_and_unknown_ids_dropped():
    known = {"D8:6", "D9:17", "D11:26", "D30:5"}
    assert evidence_ids(["D8:6; D9:17", "D:11:26", "D30:05", "D1:1", "D8:6"], known) == ["D8:6", "D9:17", "D11:26", "D30:5"]


def test_turn_and_session_recall_by_hand():
    rankings = {("s1", 0): ["D1:3", "D1:1", "D1:1", "D1:2", "D2:1", "D2:2"],  # D1:1 at 2, D2:2 at 5 (dup ignored)
                ("s1", 3): ["D1:2"]}  # q1 has no ranking: a miss
    scores = score(DATA, rankings, ks=(1, 5))
    assert scores["cat1"] == {"recall@1": 0.0, "recall@5": 1.0, "session_any@1": 1.0, "session_any@5": 1.0, "n": 1}
    assert scores["cat4"]["recall@5"] == 0.0 and scores["cat4"]["n"] == 1
    assert scores["overall"]["n"] == 2 and scores["overall"]["recall@5"] == 0.5
    assert scores["cat5"]["recall@1"] == 1.0 and "cat5" not in str(scores["overall"])
    assert scores["missing_answers"] == 1


def test_session_recall_counts_distinct_sessions():
    # Five turns of session 1 before the evidence's session 2: it is the 2nd distinct session, not the 6th item.
    rankings = {("s1", 1): ["D1:1", "D1:2", "D1:3", "D1:1", "D2:3"]}
    scores = score(DATA, rankings, ks=(1, 2))
    assert scores["cat4"]["session_any@1"] == 0.0 and scores["cat4"]["session_any@2"] == 1.0
