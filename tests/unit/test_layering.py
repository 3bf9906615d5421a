"""The four packages import one way only: api → agents → memory → graph."""

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
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


def test_only_the_gateways_package_touches_the_neo4j_driver():
    """Every query goes through graph/gateway.py: above `graph`, no module imports `neo4j` or reaches
    for a `.driver`."""
    offenders: list[str] = []
    for package in LAYERS[1:]:
        for path in (REPO / package).rglob("*.py"):
            tree = ast.parse(path.read_text(), filename=str(path))
            where = str(path.relative_to(REPO))
            for node in ast.walk(tree):
                if isinstance(node, ast.Import) and any(a.name.split(".")[0] == "neo4j" for a in node.names):
                    offenders.append(f"{where}:{node.lineno} imports neo4j")
                elif isinstance(node, ast.ImportFrom) and node.level == 0 and (node.module or "").split(".")[0] == "neo4j":
                    offenders.append(f"{where}:{node.lineno} imports from neo4j")
                elif isinstance(node, ast.Attribute) and node.attr in ("driver", "_driver"):
                    offenders.append(f"{where}:{node.lineno} uses .{node.attr}")
    assert offenders == []


def test_within_graph_only_the_gateway_opens_sessions():
    """Inside `graph`, only the gateway calls the driver: sessions and queries go through it."""
    offenders = []
    for path in (REPO / "graph").rglob("*.py"):
        if path.name == "gateway.py":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Attribute) and node.attr in ("execute_query", "session", "GraphDatabase"):
                offenders.append(f"{path.relative_to(REPO)}:{node.lineno} .{node.attr}")
            if isinstance(node, ast.Name) and node.id == "GraphDatabase":
                offenders.append(f"{path.relative_to(REPO)}:{node.lineno} GraphDatabase")
    assert offenders == []


def test_only_the_write_path_opens_write_transactions():
    """`Gateway.write_transaction` is called by `SpaceGraph.write` alone: another caller would be a second
    write path whose vectors nothing follows (tests/test_write_path.py checks the path itself)."""
    callers = set()
    for package in LAYERS:
        for path in (REPO / package).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text())):
                if isinstance(node, ast.Attribute) and node.attr == "write_transaction":
                    callers.add(str(path.relative_to(REPO)))
    assert callers == {"graph/store.py"}


def test_the_product_never_loads_the_benchmarks():
    """Benchmark code lives in api/bench/; only the `kgmem bench` commands (api/cli/bench_commands.py) load it."""
    loading = []
    for package in LAYERS:
        for path in (REPO / package).rglob("*.py"):
            where = path.relative_to(REPO)
            if where.parts[:2] == ("api", "bench") or str(where) == "api/cli/bench_commands.py":
                continue
            for node in ast.parse(path.read_text()).body:  # module level: what importing the module loads
                names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                    [node.module or ""] if isinstance(node, ast.ImportFrom) else []
                if any(name.startswith("api.bench") for name in names):
                    loading.append(f"{where}:{node.lineno}")
    assert loading == []
