"""Turning Neo4j records into the graph's Pydantic models."""

from __future__ import annotations

import json
from typing import Any

from neo4j.time import Date, DateTime, Duration, Time

from graph.model import RESERVED_PROPERTIES, Entity, Observation, Provenance, Relation, Revision

# Bookkeeping properties that are neither fields nor attributes.
_INTERNAL = frozenset({"current_key", "vector_status", "pending_since"})


def native(value: Any) -> Any:
    """Neo4j temporal values to Python ones, recursively."""
    if isinstance(value, (DateTime, Date, Time)):
        return value.to_native()
    if isinstance(value, Duration):
        return str(value)
    if isinstance(value, list):
        return [native(item) for item in value]
    if isinstance(value, dict):
        return {key: native(item) for key, item in value.items()}
    return value


def provenance(props: dict[str, Any]) -> Provenance:
    return Provenance(source=props.get("source"), agent=props.get("agent"), delegation_id=props.get("delegation_id"))


def entity(props: dict[str, Any]) -> Entity:
    props = native(props)
    attributes = {k: v for k, v in props.items() if k not in RESERVED_PROPERTIES and k not in _INTERNAL}
    return Entity(
        id=props["id"], space=props["space"], kind=props["kind"], entity_type=props.get("entity_type") or props["kind"],
        name=props["name"], aliases=props.get("aliases") or [], summary=props.get("summary"),
        attributes=dict(sorted(attributes.items())), created_at=props["created_at"], updated_at=props["updated_at"],
        retracted_at=props.get("retracted_at"), provenance=provenance(props),
    )


def observation(props: dict[str, Any]) -> Observation:
    props = native(props)
    return Observation(
        id=props["id"], space=props["space"], entity_id=props["entity_id"], text=props["text"],
        valid_from=props.get("valid_from"), valid_to=props.get("valid_to"), recorded_at=props["recorded_at"],
        retracted_at=props.get("retracted_at"), vector_status=props.get("vector_status", "pending"),
        ref=props.get("ref"), seq=props.get("seq"), provenance=provenance(props),
    )


def relation(props: dict[str, Any], rel_type: str, source: tuple[str, str], target: tuple[str, str]) -> Relation:
    props = native(props)
    return Relation(
        id=props["id"], space=props["space"], type=rel_type, label=props.get("label") or rel_type,
        source_id=source[0], source_name=source[1], target_id=target[0], target_name=target[1],
        valid_from=props["valid_from"], valid_to=props.get("valid_to"), recorded_at=props["recorded_at"],
        retracted_at=props.get("retracted_at"), weight=props.get("weight"), provenance=provenance(props),
    )


def relation_from_row(row: dict[str, Any]) -> Relation:
    """A row shaped by the queries' common RETURN: relation, type, source_id/name, target_id/name."""
    return relation(row["relation"], row["type"], (row["source_id"], row["source_name"]),
                    (row["target_id"], row["target_name"]))


def revision(props: dict[str, Any]) -> Revision:
    props = native(props)
    return Revision(id=props["id"], at=props["at"], changes=json.loads(props["changes"]), provenance=provenance(props))
