"""The pure temporal-invalidation rules for single- and multi-valued relations."""

from datetime import UTC, datetime

from graph.temporal import Fact, Plan, plan_multi_valued, plan_single_valued


def day(n: int) -> datetime:
    return datetime(2026, 1, n, tzinfo=UTC)


def test_first_fact_is_simply_recorded():
    assert plan_single_valued([], "staging", day(1)) == Plan()


def test_a_new_value_closes_the_current_one_where_it_begins():
    current = Fact("f1", "staging", day(1))
    plan = plan_single_valued([current], "production", day(5))
    assert plan.close == {"f1": day(5)}
    assert plan.incoming_valid_to is None
    assert plan.duplicate_of is None


def test_the_same_value_again_is_a_duplicate():
    current = Fact("f1", "staging", day(1))
    assert plan_single_valued([current], "staging", day(3)) == Plan(duplicate_of="f1")


def test_a_late_arriving_older_value_ends_where_the_newer_one_begins():
    newer = Fact("f1", "production", day(10))
    plan = plan_single_valued([newer], "staging", day(2))
    assert plan.incoming_valid_to == day(10)
    assert plan.close == {}  # the newer fact stays as it is


def test_a_value_inserted_between_two_facts_splits_history():
    first = Fact("a", "staging", day(1), valid_to=day(5))
    second = Fact("b", "production", day(5))
    plan = plan_single_valued([first, second], "shadow", day(3))
    assert plan.close == {"a": day(3)}
    assert plan.incoming_valid_to == day(5)


def test_closed_facts_that_ended_before_do_not_change():
    old = Fact("a", "staging", day(1), valid_to=day(2))
    current = Fact("b", "production", day(2))
    plan = plan_single_valued([old, current], "archived", day(9))
    assert plan.close == {"b": day(9)}


def test_a_value_that_was_true_before_but_is_not_now_is_not_a_duplicate():
    old = Fact("a", "staging", day(1), valid_to=day(2))
    current = Fact("b", "production", day(2))
    plan = plan_single_valued([old, current], "staging", day(6))
    assert plan.duplicate_of is None
    assert plan.close == {"b": day(6)}


def test_a_different_value_with_the_same_start_time_wins():
    current = Fact("f1", "alice", day(4))
    plan = plan_single_valued([current], "bob", day(4))
    assert plan.close == {"f1": day(4)}
    assert plan.incoming_valid_to is None


def test_multi_valued_relations_only_deduplicate_current_facts():
    facts = [Fact("a", "pandas", day(1)), Fact("b", "spark", day(1), valid_to=day(3))]
    assert plan_multi_valued(facts, "pandas", day(5)) == Plan(duplicate_of="a")
    assert plan_multi_valued(facts, "spark", day(5)) == Plan()
    assert plan_multi_valued(facts, "polars", day(5)) == Plan()
