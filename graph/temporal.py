"""Temporal invalidation of single-valued facts, as a pure function.

A single-valued relation (a delegation's assignee, a model version's stage)
holds one true fact per source at any moment. When a new fact arrives, the
facts it overlaps are closed at its `valid_from` rather than overwritten, so
history survives; a late-arriving older fact is closed where the newer one
already begins.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime


@dataclass(frozen=True)
class Fact:
    """One version of a relation from a fixed source, as the planner needs to see it."""

    id: str
    target: str
    valid_from: datetime
    valid_to: datetime | None = None


@dataclass(frozen=True)
class Plan:
    duplicate_of: str | None = None  # an existing fact already says this: write nothing
    incoming_valid_to: datetime | None = None  # the new fact ends where a later one starts
    close: dict[str, datetime] = field(default_factory=dict)  # existing fact id -> its new valid_to


def plan_single_valued(existing: list[Fact], target: str, valid_from: datetime) -> Plan:
    """How to record `target` from `valid_from` on, given the source's other (unretracted) facts."""
    for fact in existing:
        if fact.target == target and fact.valid_from <= valid_from and (fact.valid_to is None or valid_from < fact.valid_to):
            return Plan(duplicate_of=fact.id)

    later_starts = [fact.valid_from for fact in existing if fact.valid_from > valid_from]
    incoming_valid_to = min(later_starts) if later_starts else None

    # Equal start times: the write that arrives later wins, and the other keeps a zero-length span.
    close = {
        fact.id: valid_from
        for fact in existing
        if fact.valid_from <= valid_from and (fact.valid_to is None or fact.valid_to > valid_from)
    }
    return Plan(incoming_valid_to=incoming_valid_to, close=close)


def plan_multi_valued(existing: list[Fact], target: str, valid_from: datetime) -> Plan:
    """Multi-valued relations only deduplicate: the same current fact is not written twice."""
    for fact in existing:
        if fact.target == target and fact.valid_to is None:
            return Plan(duplicate_of=fact.id)
    return Plan()
