"""kgmem's scoring of conversational-recall rankings (api/bench/scoring.py), on cases worked by hand."""

from api.bench.scoring import evidence_ids, question_recall, score
from api.bench.tune import difference, verdict

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


def test_question_recall_scores_each_question_of_the_overall_categories():
    rankings = {("s1", 0): ["D1:1", "D1:2"], ("s1", 1): ["D1:1"], ("s1", 3): ["D1:2"]}
    assert question_recall(DATA, rankings, k=1) == {("s1", 0): 0.5, ("s1", 1): 0.0}


def test_a_change_is_proposed_only_for_a_gain_beyond_noise_and_no_loss_beyond_it():
    many, few = [(i,) for i in range(1500)], [(i,) for i in range(30)]
    default_many, default_few = {q: 0.5 for q in many}, {q: 0.5 for q in few}
    # Fifteen of 1,500 questions lose half their recall, one of 30 gains it: a real loss, a gain within noise.
    loses_big = difference({q: 0.5 - (i < 15) * 0.5 for i, q in enumerate(many)}, default_many)
    gains_small = difference({q: 0.5 + (i < 1) * 0.5 for i, q in enumerate(few)}, default_few)
    assert loses_big["mean"] == -0.005 and loses_big["n"] == 1500
    assert not verdict({"large": loses_big, "small": gains_small})
    # 150 of 1,500 questions gained and nothing lost elsewhere: proposed.
    gains_big = difference({q: 0.5 + (i < 150) * 0.5 for i, q in enumerate(many)}, default_many)
    unchanged = difference(default_few, default_few)
    assert verdict({"large": gains_big, "small": unchanged})
    assert not verdict({"large": unchanged, "small": unchanged})
