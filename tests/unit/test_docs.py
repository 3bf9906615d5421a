"""The docs keep up with the code: every command, every setting and the package layout are in them."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import typer

from api.cli import app as cli_app
from graph.settings import Settings

REPO = Path(__file__).resolve().parents[2]
DOCS = "\n".join(path.read_text() for path in [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))])
README = (REPO / "README.md").read_text()


def commands(group, prefix: str = "kgmem") -> list[str]:
    found = []
    for name, command in sorted(group.commands.items()):
        path = f"{prefix} {name}"
        found.append(path)
        found += commands(command, path) if hasattr(command, "commands") else []
    return found


def setting_variables() -> list[str]:
    names = []
    for name, field in Settings.model_fields.items():
        alias = field.validation_alias
        choices = getattr(alias, "choices", None)
        names.append(str(choices[0]) if choices else f"KGMEM_{name.upper()}")
    return names


@pytest.mark.parametrize("command", commands(typer.main.get_command(cli_app)))
def test_every_command_is_documented(command):
    # A subcommand may be documented in its group's line (`kgmem neo4j install|start|stop`).
    *group, last = command.split()
    documented = command in DOCS or re.search(rf"{re.escape(' '.join(group))} [\w|\\]*\b{re.escape(last)}\b", DOCS)
    assert documented, f"`{command}` is in no doc: add it to README.md or docs/"


@pytest.mark.parametrize("variable", setting_variables())
def test_every_setting_is_documented(variable):
    assert variable in DOCS, f"{variable} is in no doc: add it to the README's configuration table"


def test_the_readme_layout_table_names_every_package():
    section = README.split("## Layout", 1)[1].split("\n## ", 1)[0]
    documented = set(re.findall(r"^\| `(\w+)/` \|", section, re.MULTILINE))
    packages = {path.parent.name for path in REPO.glob("*/__init__.py")}
    assert documented == packages
