"""Queries that exercise the analyst guard's limits, shared by the guard, CLI and API tests."""

import uuid


def slow_to_plan(patterns: int = 60) -> str:
    """A read query Neo4j's planner spends long on (33 s for 60 patterns on a 2-core machine) and that runs
    in no time once planned (no relationship has the type). Its variables are new each call, so no plan
    cached by an earlier call can answer for it."""
    tag = uuid.uuid4().hex[:8]
    chain = ", ".join(f"(v{tag}_{i}:Entity)-[:NO_SUCH_TYPE]->(v{tag}_{i + 1}:Entity)" for i in range(patterns))
    return f"MATCH {chain} RETURN count(*) AS matches"


def doubled_string(doublings: int, rows: int = 1) -> str:
    """Rows of one string each, 2**doublings characters long, built by `reduce` as a runaway query would."""
    return f"UNWIND range(1, {rows}) AS row RETURN reduce(s = 'x', i IN range(1, {doublings}) | s + s) AS s"
