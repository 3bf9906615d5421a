"""A guarded, read-only Cypher console for analysts.

The guard does not parse Cypher itself: it asks Neo4j to plan the query with
EXPLAIN (which runs nothing) and judges the plan. A query passes only when

1. Neo4j can plan it (syntax errors, unknown procedures and functions, and
   administration commands the server will not plan are refused with Neo4j's
   own message);
2. Neo4j classifies it as read-only (query type ``r``), which shuts out writes,
   schema changes, administration commands and write/DBMS-mode procedures;
3. no operator in the plan touches kgmem's own bookkeeping nodes (`:ApiKey`,
   `:IdempotencyRecord`, `:ApiJob`): it may not name their labels, scan every node
   or seek nodes by internal id (counting all nodes from the count store stays allowed);
4. no operator in the plan reaches outside the graph or beyond one read
   transaction, because some of those are still of type ``r``: LOAD CSV, any
   ``CALL … IN TRANSACTIONS``, ``SHOW TRANSACTIONS``/``SHOW SETTINGS``,
   ``TERMINATE TRANSACTIONS``, a procedure not on the read-only allow-list, a
   user-defined (plugin) function, or another database than the one asked for.

A query that passes then runs in a READ-mode transaction (the server rejects
any write there, a second line of defence) with a row cap and a cap on the answer's
size. One time limit covers both the planning and the run: a query with many patterns
can keep the planner busy for longer than it would take to run.
"""

from __future__ import annotations

import base64
import json
import re
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from neo4j.exceptions import Neo4jError
from neo4j.graph import Node, Path, Relationship
from neo4j.spatial import Point
from neo4j.time import Date, DateTime, Duration, Time
from pydantic import BaseModel, Field

from graph.errors import Conflict, CypherFailed, CypherRefused, InvalidInput, QueryTimeout
from graph.gateway import Gateway

DEFAULT_TIMEOUT_S = 10.0
DEFAULT_MAX_ROWS = 1000
# The answer's size as JSON: rows past it are left unread, as past the row cap. One `reduce` that
# doubled a string answered 262 MB, which the API and the CLI would otherwise hold and send whole.
DEFAULT_MAX_BYTES = 16 * 1024 * 1024

# Neo4j ran out of memory for the query: past the transaction's limit (db.memory.transaction.max)
# or, for allocations Neo4j does not track (a string built up by `reduce`), the whole heap.
# The driver calls both transient, but the same query would fail again: it must ask for less.
OUT_OF_MEMORY_ERRORS = frozenset({
    "Neo.TransientError.General.MemoryPoolOutOfMemoryError",
    "Neo.TransientError.General.TransactionOutOfMemoryError",
    "Neo.TransientError.General.OutOfMemoryError",
})

# Procedures that only read the graph or its schema. Everything else is refused, even
# when Neo4j calls it read-only: db.awaitIndexes blocks, db.resampleIndex,
# db.prepareForReplanning and db.stats.* change server state, dbms.* describes the server.
READ_ONLY_PROCEDURES = frozenset({
    "db.labels",
    "db.relationshipTypes",
    "db.propertyKeys",
    "db.schema.visualization",
    "db.schema.nodeTypeProperties",
    "db.schema.relTypeProperties",
    "db.index.fulltext.queryNodes",
    "db.index.fulltext.queryRelationships",
    "db.index.vector.queryNodes",
    "db.index.vector.queryRelationships",
})

# Namespaces of Neo4j's built-in functions; a namespaced call outside them is a
# user-defined function from a plugin (apoc.*, …), which may read files or the network.
BUILT_IN_FUNCTION_NAMESPACES = frozenset({
    "date", "datetime", "localdatetime", "localtime", "time", "duration", "point", "vector",
})

# Plan operators that can appear in a query Neo4j still classifies as read-only.
_IN_TRANSACTIONS = "CALL { … } IN TRANSACTIONS commits batches of its own, outside the guarded read transaction"
REFUSED_OPERATORS: dict[str, str] = {
    "LoadCSV": "LOAD CSV reads files and URLs from the server",
    "TransactionApply": _IN_TRANSACTIONS,
    "TransactionForeach": _IN_TRANSACTIONS,
    "ShowTransactions": "SHOW TRANSACTIONS exposes other sessions' queries and parameters",
    "TerminateTransactions": "TERMINATE TRANSACTIONS stops other sessions' work",
    "ShowSettings": "SHOW SETTINGS exposes the server's configuration",
}
# Commands (SHOW …) that only describe the schema and the callable catalogue.
ALLOWED_COMMANDS = frozenset({"ShowIndexes", "ShowConstraints", "ShowFunctions", "ShowProcedures"})

# Nodes that belong to kgmem itself, not to any tenant: API keys and the API's bookkeeping
# (idempotency records, background jobs). They have no relationships, so a query reaches
# them only by naming their label, scanning every node, or seeking a node by internal id.
BOOKKEEPING_LABELS = frozenset({"ApiKey", "IdempotencyRecord", "ApiJob"})
REFUSED_NODE_SOURCES: dict[str, str] = {
    "AllNodesScan": "an unlabelled node pattern scans every node, kgmem's own bookkeeping included; "
                    "give each node pattern a label such as :Entity",
    "NodeByIdSeek": "finding nodes by internal id could reach kgmem's own bookkeeping; match by label and property",
    "NodeByElementIdSeek": "finding nodes by element id could reach kgmem's own bookkeeping; "
                           "match by label and property",
}
_LABEL_MENTION = re.compile(r"[:|&!]\s*`?(" + "|".join(sorted(BOOKKEEPING_LABELS)) + r")\b")

QUERY_TYPES = {
    "w": "writes to the graph",
    "rw": "reads and writes the graph",
    "s": "changes the schema, administers the server or calls a DBMS procedure",
}
ADMINISTRATION_ERRORS = frozenset({
    "Neo.ClientError.Statement.UnsupportedAdministrationCommand",
    "Neo.ClientError.Statement.NotSystemDatabaseError",
})

_EXPLAIN = "EXPLAIN\n"  # on a line of its own, so Neo4j's columns match the analyst's text
_POSITION = re.compile(r"\(line (\d+), column (\d+) \(offset: (\d+)\)\)")
_PROCEDURE_NAME = re.compile(r"\s*([\w.]+)\s*\(")
_FUNCTION_CALL = re.compile(r"\b([A-Za-z_]\w*)(?:\.[A-Za-z_]\w*)+\s*\(")


@dataclass(frozen=True)
class Explained:
    """What Neo4j's plan says about a query the guard accepted."""

    query_type: str
    operators: tuple[str, ...]


class CypherResult(BaseModel):
    columns: list[str]
    rows: list[dict[str, Any]]
    truncated: bool = Field(description="More rows existed than came back (see truncated_by)")
    truncated_by: Literal["max_rows", "max_bytes"] | None = Field(
        default=None, description="What cut the rows short: the row cap, or the cap on the answer's size in bytes")
    elapsed_ms: float = Field(description="Wall time, the guard's planning included")


def check_read_only(gateway: Gateway, query: str, params: Mapping[str, Any] | None = None, *,
                    timeout_s: float | None = None) -> Explained:
    """Plan `query` with EXPLAIN and raise CypherRefused unless it is safe to run read-only.
    `timeout_s` bounds the planning (QueryTimeout past it); None: the `time_limit` in force, if any."""
    if not query.strip():
        raise CypherRefused("refused: the query is empty")
    database = gateway.database
    try:
        summary = gateway.explain(query, params, timeout=timeout_s)
    except QueryTimeout as exc:
        limit = f" {timeout_s:g} s" if timeout_s else ""
        raise QueryTimeout(f"Neo4j was still planning the query at its{limit} time limit and stopped it; "
                           "a query with fewer patterns plans faster") from exc
    except Neo4jError as exc:
        raise _planning_refusal(exc) from exc
    except (InvalidInput, Conflict) as exc:  # the gateway's reading of a value Neo4j refused while planning
        raise _planning_refusal(exc.__cause__) from exc

    if summary.query_type != "r":
        doing = QUERY_TYPES.get(summary.query_type or "", f"is of query type {summary.query_type!r}")
        raise CypherRefused(f"refused: kgmem cypher only runs read-only queries, and this one {doing}")
    if summary.plan is None:
        raise CypherRefused("refused: Neo4j returned no plan to check the query against")
    operators = tuple(_operators(summary.plan))
    for operator in operators:
        _check_operator(operator, database)
    return Explained(summary.query_type, tuple(op["operatorType"] for op in operators))


def run_read_only(
    gateway: Gateway,
    query: str,
    params: Mapping[str, Any] | None = None,
    *,
    timeout_s: float = DEFAULT_TIMEOUT_S,
    max_rows: int = DEFAULT_MAX_ROWS,
    max_bytes: int = DEFAULT_MAX_BYTES,
) -> CypherResult:
    """Run `query` once the guard accepts it: READ mode, at most `max_rows` rows and `max_bytes` of JSON,
    and `timeout_s` for planning and running together."""
    if timeout_s <= 0 or max_rows < 1 or max_bytes < 1:  # Neo4j reads a timeout of 0 as no limit at all
        raise InvalidInput(f"timeout_s must be above 0 and max_rows and max_bytes at least 1, "
                           f"not {timeout_s}, {max_rows} and {max_bytes}")
    started = time.perf_counter()
    check_read_only(gateway, query, params, timeout_s=timeout_s)
    # The run gets what planning left of the limit (the plan is cached by then, so that is run time).
    remaining = max(timeout_s - (time.perf_counter() - started), 0.001)

    def read(tx) -> tuple[list[str], list[dict[str, Any]], str | None]:
        try:
            columns, records = tx.records(query, params or {})
            rows: list[dict[str, Any]] = []
            size = 0
            for record in records:
                if len(rows) == max_rows:
                    return columns, rows, "max_rows"
                row = {key: to_json_value(value) for key, value in record.items()}
                size += _json_size(row)
                if size > max_bytes:
                    if not rows:
                        raise CypherFailed(
                            f"the query's first row alone is over the answer's {_mib(max_bytes)} size cap; "
                            "return less (fewer columns, shorter strings, size() instead of the value)")
                    return columns, rows, "max_bytes"
                rows.append(row)
            return columns, rows, None
        except Neo4jError as exc:
            # Caught here, inside the transaction, so the driver does not retry it as a transient error.
            if exc.code in OUT_OF_MEMORY_ERRORS:
                raise CypherFailed(f"Neo4j ran out of memory for the query and stopped it ({_message(exc)}); "
                                   "ask for less: filter earlier, aggregate, or build smaller values") from exc
            raise

    try:
        # fetch_size: ask Neo4j for no more records than the cap needs, not the driver's default batch.
        columns, rows, truncated_by = gateway.read_transaction(read, timeout=remaining, fetch_size=max_rows + 1)
    except QueryTimeout as exc:
        raise QueryTimeout(f"the query ran longer than its {timeout_s:g} s time limit and was stopped") from exc
    except Neo4jError as exc:  # what the gateway leaves as it is: the analyst's query failed at run time
        raise CypherFailed(f"Neo4j stopped the query: {_message(exc)}") from exc
    except (InvalidInput, Conflict) as exc:  # a value Neo4j refused at run time
        raise CypherFailed(f"Neo4j stopped the query: {_message(exc.__cause__)}") from exc
    return CypherResult(
        columns=columns, rows=rows, truncated=truncated_by is not None, truncated_by=truncated_by,
        elapsed_ms=round((time.perf_counter() - started) * 1000, 1),
    )


def _json_size(row: Mapping[str, Any]) -> int:
    """Bytes the row takes in the JSON answer (UTF-8, NaN as JSON's null would be)."""
    return len(json.dumps(row, ensure_ascii=False, separators=(",", ":"), default=str).encode())


def _mib(size: int) -> str:
    return f"{size / (1024 * 1024):g} MiB"


def to_json_value(value: Any) -> Any:
    """A Neo4j value as plain JSON-friendly Python: nodes, relationships and paths as maps, times as ISO 8601."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, Node):
        return {
            "element_id": value.element_id, "labels": sorted(value.labels),
            "properties": {key: to_json_value(item) for key, item in value.items()},
        }
    if isinstance(value, Relationship):
        return {
            "element_id": value.element_id, "type": value.type,
            "start": value.start_node.element_id if value.start_node else None,
            "end": value.end_node.element_id if value.end_node else None,
            "properties": {key: to_json_value(item) for key, item in value.items()},
        }
    if isinstance(value, Path):
        return {
            "nodes": [to_json_value(node) for node in value.nodes],
            "relationships": [to_json_value(rel) for rel in value.relationships],
        }
    if isinstance(value, (DateTime, Date, Time, Duration)):
        return value.iso_format()
    if isinstance(value, Point):
        return {"srid": value.srid, "coordinates": list(value)}
    if isinstance(value, (bytes, bytearray)):
        return base64.b64encode(value).decode("ascii")
    if isinstance(value, Mapping):
        return {str(key): to_json_value(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_json_value(item) for item in value]
    return str(value)


def called_functions(details: str) -> set[str]:
    """The namespaces of namespaced function calls in a plan operator's Details (lower-cased)."""
    return {match.group(1).lower() for match in _FUNCTION_CALL.finditer(details)}


def _operators(plan: Mapping[str, Any]) -> Iterator[Mapping[str, Any]]:
    yield plan
    for child in plan.get("children", []):
        yield from _operators(child)


def _check_operator(operator: Mapping[str, Any], database: str) -> None:
    name, _, graph = str(operator.get("operatorType", "")).partition("@")
    details = str(operator.get("args", {}).get("Details", ""))
    if graph and graph != database:
        raise CypherRefused(f"refused: the query reaches the database {graph!r}; kgmem cypher reads only {database!r}")
    if name in REFUSED_NODE_SOURCES:
        raise CypherRefused(f"refused: {REFUSED_NODE_SOURCES[name]}")
    if mention := _LABEL_MENTION.search(details):
        raise CypherRefused(f"refused: :{mention.group(1)} nodes are kgmem's own bookkeeping, not graph data")
    if name in REFUSED_OPERATORS:
        raise CypherRefused(f"refused: {REFUSED_OPERATORS[name]}")
    if name.startswith(("Show", "Terminate")) and name not in ALLOWED_COMMANDS:
        raise CypherRefused(f"refused: the command behind the {name} operator is not allowed in kgmem cypher")
    if name == "ProcedureCall":
        match = _PROCEDURE_NAME.match(details)
        procedure = match.group(1) if match else "(unnamed)"
        if procedure not in READ_ONLY_PROCEDURES:
            raise CypherRefused(
                f"refused: procedure {procedure} is not allowed; kgmem cypher calls only these read-only "
                f"procedures: {', '.join(sorted(READ_ONLY_PROCEDURES))}"
            )
        details = details[match.end():] if match else details  # its arguments may still call functions
    plugins = called_functions(details) - BUILT_IN_FUNCTION_NAMESPACES
    if plugins:
        raise CypherRefused(
            f"refused: user-defined functions ({', '.join(sorted(plugins))}.*) may reach outside the graph"
        )


def _planning_refusal(exc: Neo4jError) -> CypherRefused:
    message = _POSITION.sub(_position_in_query, _message(exc))
    if exc.code in ADMINISTRATION_ERRORS:
        return CypherRefused(f"refused: administration commands are not allowed in kgmem cypher ({message})")
    if (exc.code or "").startswith("Neo.ClientError."):
        return CypherRefused(f"invalid query: {message}")
    return CypherRefused(f"refused: Neo4j could not plan the query: {message}")


def _position_in_query(match: re.Match[str]) -> str:
    """A position in the EXPLAIN-prefixed text, counted in the analyst's own query."""
    line, column, offset = (int(group) for group in match.groups())
    if line < 2:  # on the EXPLAIN line, not inside the analyst's text
        return match.group(0)
    return f"(line {line - 1}, column {column} (offset: {offset - len(_EXPLAIN)}))"


def _message(exc: Neo4jError) -> str:
    """Neo4j's message on one line, without the query it echoes (in quotes, under a caret line)."""
    lines: list[str] = []
    for line in (exc.message or str(exc)).splitlines():
        if line.startswith('"'):
            break
        if line.strip():
            lines.append(line.strip())
    return " ".join(lines) or exc.code or type(exc).__name__
