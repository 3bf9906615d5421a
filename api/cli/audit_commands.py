"""`kgmem audit`: who changed what and when in a space, as a table or as JSON Lines (the export)."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from api.cli.context import cli_services
from graph.audit import AuditEvent, audit_page, entity_parts
from graph.dates import parse_datetime
from graph.errors import InvalidInput
from graph.store import check_space

out = Console(soft_wrap=True)
PAGE = 500


class Format(StrEnum):
    TABLE = "table"
    JSONL = "jsonl"


def register(app: typer.Typer) -> None:
    app.command()(audit)


def audit(
    space: Annotated[str, typer.Option(help="The tenant whose writes to show.")] = "default",
    entity: Annotated[str | None, typer.Option(
        help="Only writes that touched this entity (name or id), its observations or its relations.")] = None,
    key: Annotated[str | None, typer.Option(help='Only writes made with this API key id ("cli" for this command line).')] = None,
    operation: Annotated[str | None, typer.Option(help="Only this route, command or tool, e.g. upsert_entities.")] = None,
    since: Annotated[str | None, typer.Option(help="From this time on: any date kgmem reads (2026-05-01, "
                                                   "2026-05-01T12:00Z, '8 May 2026', epoch seconds).")] = None,
    until: Annotated[str | None, typer.Option(help="Up to this time, in the same formats.")] = None,
    limit: Annotated[int | None, typer.Option(min=1, help="At most this many events (default: 50 for the table, "
                                                         "all for jsonl).")] = None,
    output: Annotated[Format, typer.Option("--format", help="table, or jsonl: one JSON object per event, "
                                                             "newest first (the trail's export).")] = Format.TABLE,
) -> None:
    """Show the audit trail of a space: every write's API key, agent, delegation, time, operation and ids.

    Each write through kgmem records one event in the same transaction, so the trail has every committed
    write and nothing that rolled back. `--format jsonl` exports it."""
    check_space(space)
    start, end = _when("--since", since), _when("--until", until)
    wanted = limit if limit is not None else (50 if output is Format.TABLE else None)
    with cli_services() as services:
        gateway = services.gateway
        ids = entity_parts(gateway, space, entity) if entity else None
        events: list[AuditEvent] = []
        shown = 0
        after = None
        while wanted is None or shown < wanted:
            size = PAGE if wanted is None else min(PAGE, wanted - shown)
            page = audit_page(gateway, space, entity_ids=ids, key_id=key, operation=operation, since=start,
                              until=end, after=after, limit=size)
            shown += len(page)
            if output is Format.JSONL:  # streamed: an export of a long trail holds one page at a time
                for event in page:
                    typer.echo(event.model_dump_json())
            else:
                events += page
            if len(page) < size:
                break
            after = (page[-1].at, page[-1].id)
    if output is Format.TABLE:
        _table(space, events)


def _when(option: str, text: str | None) -> datetime | None:
    if text is None:
        return None
    try:
        return parse_datetime(text)
    except ValueError as exc:
        raise InvalidInput(f"{option}: {exc}") from exc


def _table(space: str, events: list[AuditEvent]) -> None:
    table = Table(title=f"Audit trail of space {space}, newest first ({len(events)} events)", title_justify="left")
    for column in ("at", "key", "agent", "delegation", "operation", "ids"):
        table.add_column(column, overflow="fold")  # ids and key ids whole, never cut short
    for event in events:
        shown = ", ".join(event.ids[:3]) + (f" (+{len(event.ids) - 3})" if len(event.ids) > 3 else "")
        table.add_row(event.at.isoformat(timespec="seconds"), escape(event.key_id), escape(event.agent or ""),
                      escape(event.delegation_id or ""), escape(event.operation), escape(shown))
    out.print(table)
