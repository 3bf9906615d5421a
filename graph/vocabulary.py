"""What the graph may contain: node kinds, relation types, and how names are normalised.

Labels and relationship types reach Cypher only through 5.26's dynamic `$(…)`
syntax, and only after they pass the checks here.
"""

from __future__ import annotations

import re
import unicodedata
from enum import StrEnum
from typing import Literal, get_args

from graph.errors import InvalidInput


class Kind(StrEnum):
    PROJECT = "Project"
    AGENT = "Agent"
    DELEGATION = "Delegation"
    LESSON = "Lesson"
    MODEL = "Model"
    MODEL_VERSION = "ModelVersion"
    FEATURE = "Feature"
    EXPERIMENT = "Experiment"
    DATASET = "Dataset"
    TECHNOLOGY = "Technology"
    INCIDENT = "Incident"
    DECISION = "Decision"
    PERSON = "Person"
    MEMORY = "Memory"  # a free-text memory from mem0; its name is the mem0 id, its summary the text
    THING = "Thing"  # free-form entities: the agent's own type string is kept in `entity_type`


ENTITY_LABEL = "Entity"

# A delegation's life: planned (briefed) -> running -> one of the terminal states.
DelegationStatus = Literal["planned", "running", "succeeded", "failed", "cancelled"]
OPEN_STATUSES: tuple[str, ...] = ("planned", "running")
TERMINAL_STATUSES: frozenset[str] = frozenset(get_args(DelegationStatus)) - set(OPEN_STATUSES)
# What an outcome may report: every status but planned, which only a brief sets.
OutcomeStatus = Literal[tuple(s for s in get_args(DelegationStatus) if s != "planned")]  # type: ignore[valid-type]
_KIND_BY_KEY = {re.sub(r"[^a-z]", "", kind.value.lower()): kind for kind in Kind}


def kind_for_type(entity_type: str) -> Kind:
    """Map a writer's type string to a kind: 'model version' -> ModelVersion, 'city' -> Thing."""
    return _KIND_BY_KEY.get(re.sub(r"[^a-z]", "", entity_type.lower()), Kind.THING)


# Relation types by group; single-valued ones keep one current fact per source entity.
RELATION_GROUPS: dict[str, tuple[str, ...]] = {
    "work": ("PART_OF", "DELEGATED_TO", "FEEDS_INTO", "DEPENDS_ON", "LEADS_ANALYSIS_FOR"),
    "ml": ("PRODUCED", "USES_FEATURE", "TRAINED_ON", "EVALUATED_IN", "VERSION_OF", "IN_STAGE"),
    "knowledge": ("LEARNED_FROM", "APPLIES_TO", "SUPERSEDES"),
    "incidents": ("CAUSED", "RESOLVED_BY"),
    "other": ("USES_TECHNOLOGY", "MENTIONS", "RELATED_TO"),
}
DECLARED_RELATIONS = frozenset(t for group in RELATION_GROUPS.values() for t in group)
SINGLE_VALUED = frozenset({"DELEGATED_TO", "IN_STAGE", "VERSION_OF"})
# Structural relationships kgmem itself maintains; writers may not create them.
RESERVED_RELATIONS = frozenset({"HAS_OBSERVATION", "HAS_REVISION"})

RELATION_TYPE_PATTERN = re.compile(r"^[A-Z][A-Z0-9_]{0,63}$")


def relation_type(raw: str) -> str:
    """Canonical relationship type for `raw`: 'works at' -> 'WORKS_AT'. Raises InvalidInput."""
    candidate = re.sub(r"[^A-Za-z0-9]+", "_", raw.strip()).strip("_").upper()
    if not RELATION_TYPE_PATTERN.fullmatch(candidate):
        raise InvalidInput(
            f"relation type {raw!r} is not allowed: types must match {RELATION_TYPE_PATTERN.pattern} "
            "after upper-casing (letters, digits and underscores, starting with a letter, at most 64)"
        )
    if candidate in RESERVED_RELATIONS:
        raise InvalidInput(f"relation type {candidate} is reserved for kgmem's own bookkeeping")
    return candidate


def normalise_name(name: str) -> str:
    """The identity key of a name: Unicode-normalised, case-folded, whitespace collapsed."""
    return " ".join(unicodedata.normalize("NFKC", name).casefold().split())
