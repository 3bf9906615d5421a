"""`kgmem forget`: forget an entity, an agent, a delegation, a source or a whole space, with a receipt."""

from __future__ import annotations

from typing import Annotated

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from api.cli.context import cli_services
from api.forget import ForgetReceipt, ForgetRequest, forget
from api.idempotency import IdempotencyStore
from api.jobs import JobStore
from graph.errors import InvalidInput
from graph.forget import resolve_entity
from graph.store import check_space

out = Console(soft_wrap=True)
err = Console(stderr=True, soft_wrap=True)


def register(app: typer.Typer) -> None:
    app.command(name="forget")(forget_command)


def forget_command(
    space: Annotated[str, typer.Option(help="The tenant to forget in.")] = "default",
    entity: Annotated[str | None, typer.Option(
        help="An entity (name or id): it, its observations, revisions and relations, and every mention of it.")] = None,
    agent: Annotated[str | None, typer.Option(
        help="An agent's name: its entity, every fact with provenance agent = it, and every mention of it.")] = None,
    delegation: Annotated[str | None, typer.Option(
        help="A delegation id: its entity (outcomes, lessons) and every fact with provenance delegation_id = it.")] = None,
    source: Annotated[str | None, typer.Option(help="A source label: every fact with provenance source = it.")] = None,
    all_space: Annotated[bool, typer.Option("--all-space", help="Everything in the space.")] = False,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the receipt as one JSON object.")] = False,
) -> None:
    """Forget one target for good, in every store: Neo4j (nodes, observations, revisions, relations, mentions),
    Chroma (every vector, passage and window), mem0 (its vectors and history database), stored idempotent
    answers and job results that hold it, and earlier audit events (scrubbed). Prints the receipt: counts per
    store. The forget itself leaves one audit event, with counts and no content.

    Give exactly one of --entity, --agent, --delegation, --source or --all-space. docs/operations.md says
    precisely what each one reaches."""
    check_space(space)
    try:
        request = ForgetRequest(entity_id=entity, agent=agent, delegation_id=delegation, source=source,
                                all_space=all_space)
    except ValidationError as exc:
        raise InvalidInput("give exactly one of --entity, --agent, --delegation, --source or --all-space") from exc
    with cli_services() as services:
        settings = services.settings
        with err.status("Loading the embedding model…"):
            memory = services.memory().space(space)
        if entity is not None:
            request = request.model_copy(update={"entity_id": resolve_entity(memory.graph, entity)})
        what = _described(request, entity)
        if not yes:
            typer.confirm(f"Forget {what} in space {space!r} from every store? This cannot be undone", abort=True)
        with err.status(f"Forgetting {escape(what)} in Neo4j, Chroma, mem0, stored answers, jobs and the audit trail…"):
            receipt = forget(memory, request, idempotency=IdempotencyStore(services.gateway,
                                                                           settings.api_idempotency_ttl_s),
                             jobs=JobStore(services.gateway))
    if as_json:
        typer.echo(receipt.model_dump_json())
        return
    _print(receipt, what)


def _described(request: ForgetRequest, entity: str | None) -> str:
    if request.all_space:
        return "everything"
    if request.entity_id:
        return f"the entity {entity!r}" if entity == request.entity_id else f"the entity {entity!r} ({request.entity_id})"
    if request.agent:
        return f"the agent {request.agent!r}"
    if request.delegation_id:
        return f"the delegation {request.delegation_id!r}"
    return f"the source {request.source!r}"


def _print(receipt: ForgetReceipt, what: str) -> None:
    table = Table(title=f"Forgot {escape(what)} in space {escape(receipt.space)}: the receipt", title_justify="left",
                  show_header=False)
    table.add_column("store")
    table.add_column("removed", justify="right")
    rows = [("Neo4j entities", receipt.neo4j.entities), ("Neo4j observations", receipt.neo4j.observations),
            ("Neo4j relations", receipt.neo4j.relations), ("Neo4j revisions", receipt.neo4j.revisions),
            ("Neo4j other nodes", receipt.neo4j.other_nodes),
            ("Neo4j nodes kept, mentions redacted", receipt.neo4j.redacted),
            ("Chroma vectors", receipt.chroma_vectors), ("mem0 vectors", receipt.mem0_vectors),
            ("mem0 history rows", receipt.mem0_history_rows), ("idempotency records", receipt.idempotency_records),
            ("job results", receipt.job_results), ("export archives", receipt.export_archives),
            ("audit events scrubbed", receipt.audit_events_scrubbed)]
    for label, count in rows:
        table.add_row(label, str(count))
    out.print(table)
    err.print(f"The forget's own audit event: {receipt.audit_event_id}", highlight=False)
