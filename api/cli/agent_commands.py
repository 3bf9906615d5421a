"""`kgmem agent run "TASK"`: the example orchestrator (agents/orchestrator.py) from the command line."""

from __future__ import annotations

import json
from typing import Annotated, Any

import anthropic
import typer
from rich.console import Console
from rich.text import Text

from agents.orchestrator import DEFAULT_MAX_TURNS, DEFAULT_MODEL, Orchestrator
from agents.tools import ToolOutcome
from api.cli.context import cli_services
from graph.errors import ConfigurationError
from graph.store import check_space
from graph import get_settings
from memory.extraction import ClaudeExtractor, claude_client

app = typer.Typer(help="Run Claude as an orchestrator of specialist agents, with kgmem as the team's memory.",
                  no_args_is_help=True)
out = Console(soft_wrap=True)
err = Console(stderr=True, soft_wrap=True, highlight=False)


def register(app_: typer.Typer) -> None:
    app_.add_typer(app, name="agent")


@app.command()
def run(
    task: Annotated[str, typer.Argument(help="What the team should do, in plain language.")],
    space: Annotated[str, typer.Option("--space", "-s", help="The space (tenant) the team's memory lives in.")] = "default",
    project: Annotated[str | None, typer.Option("--project", "-p", help="The project the work belongs to.")] = None,
    model: Annotated[str, typer.Option("--model", "-m", help="The Claude model for the lead and the specialists.")
                     ] = DEFAULT_MODEL,
    max_turns: Annotated[int, typer.Option("--max-turns", min=1, max=200,
                                           help="At most this many replies from the lead.")] = DEFAULT_MAX_TURNS,
    max_delegations: Annotated[int, typer.Option("--max-delegations", min=1, max=20,
                                                 help="How many pieces the lead may split the task into.")] = 3,
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as one JSON object.")] = False,
) -> None:
    """Claude plans the task, briefs each delegation from kgmem, hands it to a simulated specialist (a second Claude call playing that agent) and records the outcome and lessons in kgmem.

    Needs ANTHROPIC_API_KEY. Progress (each tool call) goes to standard error, the lead's answer to standard output."""
    check_space(space)
    client = anthropic_client()
    with cli_services(anthropic_client=client) as services:
        orchestrator = Orchestrator(
            client, services.memory().space(space), model=model, max_turns=max_turns, max_delegations=max_delegations,
            extractor=ClaudeExtractor(client, model=model), on_tool=None if as_json else show_tool)
        result = orchestrator.run(task, project=project)
    if as_json:
        typer.echo(json.dumps({"text": result.text, "finished": result.finished, "turns": result.turns,
                               "tool_calls": result.tool_calls, "input_tokens": result.input_tokens,
                               "output_tokens": result.output_tokens}))
        return
    if not result.finished:
        err.print(f"The lead was stopped after {result.turns} turns (--max-turns); raise it to let it finish.")
    out.print(result.text or "(the lead gave no final answer)")


def anthropic_client() -> anthropic.Anthropic:
    """Claude for the lead and the specialists; a missing key is one clear line, before anything starts."""
    client = claude_client(get_settings())
    if client is None:
        raise ConfigurationError("kgmem agent run needs Claude: set ANTHROPIC_API_KEY and run it again")
    return client


def show_tool(name: str, tool_input: Any, outcome: ToolOutcome) -> None:
    mark = ("✗", "red") if outcome.is_error else ("✓", "green")
    detail = _short(json.dumps(tool_input, ensure_ascii=False, default=str))
    line = Text.assemble((mark[0], mark[1]), " ", (name, "bold"), " ", (detail, "dim"))
    if outcome.is_error:
        line.append(f"\n  {_short(outcome.content, 300)}", style="red")
    err.print(line)


def _short(text: str, limit: int = 160) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"
