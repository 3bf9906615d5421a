"""The Cypher of portable export and import (memory/portable.py): reading a space's data in batches,
and writing an archive's records back, each node with its labels and properties as they were.

Labels and relationship types in these queries come from `DATA_LABELS` (a fixed list) or from an
archive's records checked against the relationship types kgmem writes; no query is built from other input.
Records are read by an id cursor (`n.id > $after ORDER BY n.id LIMIT $limit`), never in one
giant query; the two id-less labels (MemoryStore, MemoryDir: a few per store) page by SKIP/LIMIT.
"""

from __future__ import annotations

# Record kind -> the label of its nodes. Every node kgmem keeps in a space under one of these is data.
DATA_LABELS: dict[str, str] = {
    "entities": "Entity",  # every kind: Person, Project, Delegation, Lesson, Model, ModelVersion, Memory, ...
    "observations": "Observation",
    "revisions": "Revision",
    "memory_stores": "MemoryStore",
    "memory_dirs": "MemoryDir",
    "memory_files": "MemoryFile",
    "memory_file_versions": "MemoryFileVersion",
    "audit_events": "AuditEvent",
}
# Labels without an id: what identifies (and orders) their nodes within a space. They have no relationships.
ID_LESS: dict[str, tuple[str, ...]] = {"MemoryStore": ("store",), "MemoryDir": ("store", "path")}


def count_nodes(label: str) -> str:
    return f"MATCH (n:{label}) WHERE n.space = $space RETURN count(n) AS count"


def read_nodes(label: str) -> str:
    """A batch of one label's nodes in a space: their labels and raw properties (temporal values intact)."""
    if label in ID_LESS:
        return (f"MATCH (n:{label}) WHERE n.space = $space "
                f"WITH n ORDER BY {', '.join(f'n.{key}' for key in ID_LESS[label])} SKIP $after LIMIT $limit "
                "RETURN labels(n) AS labels, properties(n) AS props")
    return (f"MATCH (n:{label}) WHERE n.space = $space AND n.id > $after "
            "WITH n ORDER BY n.id LIMIT $limit "
            "RETURN labels(n) AS labels, properties(n) AS props")


def read_relationships(label: str) -> str:
    """The relationships going out of a batch of one label's nodes to nodes of the same space, with the
    start node's id as the cursor (a node without any still moves it on)."""
    return f"""
MATCH (s:{label}) WHERE s.space = $space AND s.id > $after
WITH s ORDER BY s.id LIMIT $limit
CALL (s) {{
  OPTIONAL MATCH (s)-[r]->(t) WHERE t.space = $space AND t.id IS NOT NULL
  WITH r, t ORDER BY type(r), t.id, r.id
  RETURN collect(CASE WHEN r IS NULL THEN null ELSE
                 {{type: type(r), props: properties(r), target_labels: labels(t), target: t.id}} END) AS rels
}}
RETURN s.id AS id, rels
"""


COUNT_RELATIONSHIPS = """
MATCH (s)-[r]->(t)
WHERE s.space = $space AND t.space = $space AND s.id IS NOT NULL AND t.id IS NOT NULL
RETURN count(r) AS count
"""

# Whether a space holds any data (an import into it must then be a merge).
SPACE_HAS_DATA = """
MATCH (n) WHERE n.space = $space AND any(label IN labels(n) WHERE label IN $labels)
RETURN count(n) > 0 AS has_data LIMIT 1
"""


# -- writing an archive back ----------------------------------------------------------------------
def create_nodes(label: str) -> str:
    """Create nodes with their labels and properties, skipping a node whose id (or, id-less, whose identity)
    is already there. Returns the ids of those created (element ids for id-less ones)."""
    if label in ID_LESS:
        keys = ", ".join(f"{key}: row.props.{key}" for key in ("space", *ID_LESS[label]))
        return f"""
UNWIND $rows AS row
OPTIONAL MATCH (x:{label} {{{keys}}})
WITH row, x WHERE x IS NULL
CREATE (n:{label})
SET n = row.props
SET n:$(row.labels)
RETURN collect(coalesce(n.id, elementId(n))) AS created
"""
    return f"""
UNWIND $rows AS row
OPTIONAL MATCH (x:{label} {{id: row.props.id}})
WITH row, x WHERE x IS NULL
CREATE (n:{label})
SET n = row.props
SET n:$(row.labels)
RETURN collect(coalesce(n.id, elementId(n))) AS created
"""


# On a merge: entities of the archive that the space already has under another id (same kind and name),
# and observations whose current text the space already has; their ids map onto what is there.
EXISTING_ENTITIES = """
UNWIND $rows AS row
MATCH (e:Entity {space: $space, kind: row.kind, name_key: row.name_key})
RETURN row.id AS id, e.id AS existing
"""
EXISTING_OBSERVATIONS = """
UNWIND $rows AS row
MATCH (o:Observation {space: $space, current_key: row.current_key})
RETURN row.id AS id, o.id AS existing
"""


def create_relationships(start_label: str, end_label: str) -> str:
    """Relationships between nodes found by id; one with an id (a fact) is skipped when that id is already
    there between them, one without (HAS_OBSERVATION, SUPERSEDES, ...) is merged on its type."""
    return f"""
UNWIND $rows AS row
MATCH (s:{start_label} {{id: row.source}})
MATCH (t:{end_label} {{id: row.target}})
CALL (s, t, row) {{
  WITH s, t, row WHERE row.props.id IS NOT NULL
  OPTIONAL MATCH (s)-[x:$(row.type) {{id: row.props.id}}]->(t)
  WITH s, t, row, x WHERE x IS NULL
  CREATE (s)-[r:$(row.type)]->(t)
  SET r = row.props
  RETURN count(r) AS with_id
}}
CALL (s, t, row) {{
  WITH s, t, row WHERE row.props.id IS NULL
  OPTIONAL MATCH (s)-[x:$(row.type)]->(t)
  WITH s, t, row, x WHERE x IS NULL
  CREATE (s)-[r:$(row.type)]->(t)
  SET r = row.props
  RETURN count(r) AS without_id
}}
RETURN sum(with_id + without_id) AS created
"""




def mark_pending(label: str) -> str:
    """Without the exporter's vectors, what the vector sync embeds: every imported item with a vector state."""
    return f"""
UNWIND $ids AS id
MATCH (n:{label} {{id: id}})
WHERE n.vector_status IS NOT NULL
SET n.vector_status = 'pending', n.pending_since = datetime()
"""
