"""`kgmem cypher` and `kgmem report`: read-only Cypher and named reports for analysts."""

from __future__ import annotations

import csv
import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict
from enum import StrEnum
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from api.cli.context import cli_services
from graph.guard import DEFAULT_MAX_BYTES, DEFAULT_MAX_ROWS, DEFAULT_TIMEOUT_S, CypherResult, run_read_only
from graph.errors import KgmemError
from graph.reports import REPORTS, Report, get_report, run_report

out = Console()
err = Console(stderr=True, soft_wrap=True)


class OutputFormat(StrEnum):
    TABLE = "table"
    JSON = "json"
    CSV = "csv"


Params = Annotated[
    list[str] | None,
    typer.Option("--param", "-p", help="A parameter as name=value, repeatable; the value is read as JSON "
                 "when it parses (10, true, [1, 2], \"text\"), else as text."),
]
Format = Annotated[OutputFormat, typer.Option("--format", "-f", help="How to print the rows.")]
Limit = Annotated[int, typer.Option(min=1, help="Print at most this many rows.")]
Timeout = Annotated[float, typer.Option(min=0.1, help="Stop the query after this many seconds, its planning included.")]


def register(app: typer.Typer) -> None:
    app.command()(cypher)
    app.command()(report)


def cypher(
    query: Annotated[str, typer.Argument(help="The Cypher query; - reads it from standard input.")],
    param: Params = None,
    output_format: Format = OutputFormat.TABLE,
    limit: Limit = DEFAULT_MAX_ROWS,
    timeout: Timeout = DEFAULT_TIMEOUT_S,
) -> None:
    """Run a read-only Cypher query. Writes, schema and admin commands, LOAD CSV and procedures that are
    not plainly read-only are refused."""
    text = sys.stdin.read() if query == "-" else query
    params = parse_params(param or [])
    with one_line_errors(), cli_services() as services:
        result = run_read_only(
            services.gateway, text, params, timeout_s=timeout, max_rows=limit
        )
    print_result(result, output_format)


def report(
    name: Annotated[str | None, typer.Argument(help="The report to run; without it, the list.")] = None,
    list_reports: Annotated[bool, typer.Option("--list", help="List the reports and their parameters.")] = False,
    space: Annotated[str | None, typer.Option(help="The tenant to report on (the `space` parameter).")] = None,
    param: Params = None,
    output_format: Format = OutputFormat.TABLE,
    limit: Limit = DEFAULT_MAX_ROWS,
    timeout: Timeout = DEFAULT_TIMEOUT_S,
) -> None:
    """Run a named analyst report, or list them with --list."""
    if list_reports or name is None:
        print_catalogue(output_format)
        return
    params = parse_params(param or [])
    if space is not None:
        params["space"] = space
    with one_line_errors():
        get_report(name).bind(params)  # a wrong name or parameter fails before Neo4j is started
        with cli_services() as services:
            result = run_report(
                services.gateway, name, params, timeout_s=timeout, max_rows=limit
            )
    print_result(result, output_format)


def parse_params(pairs: list[str]) -> dict[str, Any]:
    params: dict[str, Any] = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        if not sep or not key.strip():
            raise typer.BadParameter(f"{pair!r} is not name=value", param_hint="--param")
        try:
            params[key.strip()] = json.loads(raw)
        except json.JSONDecodeError:
            params[key.strip()] = raw
    return params


@contextmanager
def one_line_errors() -> Iterator[None]:
    """kgmem's errors as one `error:` line and exit code 1.

    Printed here as plain text rather than left to `main()`, which reads messages as rich
    markup: Neo4j's messages quote Cypher, whose brackets (`[x IN list]`) rich would swallow.
    """
    try:
        yield
    except KgmemError as exc:
        err.print(Text.assemble(("error:", "bold red"), " ", str(exc)))
        raise typer.Exit(1) from exc


def print_result(result: CypherResult, output_format: OutputFormat) -> None:
    """The rows on standard output; how many, and whether --limit cut them, on standard error."""
    if output_format is OutputFormat.JSON:
        typer.echo(result.model_dump_json(indent=2))
    elif output_format is OutputFormat.CSV:
        print_csv(result.columns, result.rows)
    else:
        print_table(result.columns, result.rows)
        err.print(f"{len(result.rows)} row{'' if len(result.rows) == 1 else 's'} in {result.elapsed_ms:g} ms",
                  style="dim")
    if result.truncated_by == "max_bytes":
        err.print(f"note: stopped at {len(result.rows)} rows, where the answer reached its size cap "
                  f"({DEFAULT_MAX_BYTES // (1024 * 1024)} MiB); return fewer or smaller values")
    elif result.truncated:
        err.print(f"note: stopped at {len(result.rows)} rows; raise --limit for more")


def print_catalogue(output_format: OutputFormat) -> None:
    if output_format is OutputFormat.JSON:
        typer.echo(json.dumps([asdict(item) for item in REPORTS.values()], indent=2))
        return
    columns = ["name", "title", "parameters"]
    rows = [{"name": item.name, "title": item.title, "parameters": _signature(item)} for item in REPORTS.values()]
    if output_format is OutputFormat.CSV:
        print_csv(columns, rows)
    else:
        print_table(columns, rows)
        out.print("* required; run one with: kgmem report NAME --space S [--param name=value ...]")


def _signature(item: Report) -> str:
    """`space*, period="week", since`: required ones starred, defaults shown."""
    names = []
    for parameter in item.parameters:
        if parameter.required:
            names.append(f"{parameter.name}*")
        elif parameter.default is not None:
            names.append(f"{parameter.name}={json.dumps(parameter.default)}")
        else:
            names.append(parameter.name)
    return ", ".join(names)


def print_table(columns: list[str], rows: list[dict[str, Any]]) -> None:
    table = Table()
    for column in columns:
        table.add_column(Text(column))  # Text, not markup: column names can be Cypher expressions
    for row in rows:
        table.add_row(*(Text(_cell(row.get(column))) for column in columns))
    out.print(table)


def print_csv(columns: list[str], rows: list[dict[str, Any]]) -> None:
    writer = csv.writer(sys.stdout, lineterminator="\n")
    writer.writerow(columns)
    for row in rows:
        writer.writerow([_cell(row.get(column)) for column in columns])


def _cell(value: Any) -> str:
    """Text as is, null as nothing, anything else (numbers, lists, maps) as JSON."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False)
