"""The four packages import one way only: api → agents → memory → graph."""

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
LAYERS = ["graph", "memory", "agents", "api"]  # each may import only those before it


def imported_top_levels(package: str) -> dict[str, set[str]]:
    found: dict[str, set[str]] = {}
    for path in (REPO / package).rglob("*.py"):
        tree = ast.parse(path.read_text(), filename=str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            for name in names:
                found.setdefault(name.split(".")[0], set()).add(str(path.relative_to(REPO)))
    return found


@pytest.mark.parametrize("package", LAYERS)
def test_imports_point_down_only(package):
    forbidden = set(LAYERS[LAYERS.index(package) + 1 :])
    offenders = {name: files for name, files in imported_top_levels(package).items() if name in forbidden}
    assert offenders == {}, f"{package} imports a layer above it: {offenders}"


def test_every_layer_is_a_package():
    for package in LAYERS:
        assert (REPO / package / "__init__.py").is_file()
