"""Make tests/fixtures/mcp-memory/memory.jsonl with the real MCP reference memory server.

    python scripts/make_mcp_memory_fixture.py            # rewrites the fixture
    python scripts/make_mcp_memory_fixture.py --out x.jsonl

Installs `@modelcontextprotocol/server-memory` (pinned below) with npm into a temporary
directory, starts it over stdio with `MEMORY_FILE_PATH` pointing at the output file, and
drives it with the Python `mcp` client: entities with messy and non-Latin names, a long
observation, relations (one to an entity that was never created, which the server
accepts), added observations, and deletes of an entity, an observation and a relation.
What the server leaves in its file is the fixture; nothing here writes the JSONL itself.
Needs node and npm on PATH and the npm registry reachable.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import subprocess
import tempfile
from pathlib import Path

from mcp import ClientSession, StdioServerParameters, stdio_client

PACKAGE = "@modelcontextprotocol/server-memory"
VERSION = "2026.8.31"
FIXTURE = Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "mcp-memory" / "memory.jsonl"

LONG_OBSERVATION = " ".join(
    f"Step {i}: the nightly churn pipeline reads the March snapshot, retrains, and writes scores to the warehouse."
    for i in range(1, 61)
)

ENTITIES = [
    {"name": "Ada Lovelace", "entityType": "person",
     "observations": ["Wrote the first published algorithm", "Prefers Polars over pandas"]},
    {"name": "  Grace   Hopper  ", "entityType": "person", "observations": ["Coined the term 'debugging'"]},
    {"name": "O'Brien & Sons, Ltd.", "entityType": "organization",
     "observations": ["Supplier of \"premium\" widgets; invoices in EUR (€)"]},
    {"name": "Zoë Çelik", "entityType": "person", "observations": ["Lives in İstanbul", "Speaks Türkçe and Deutsch"]},
    {"name": "東京プロジェクト", "entityType": "project", "observations": ["締め切りは三月です"]},
    {"name": "Churn Pipeline 🚀", "entityType": "project", "observations": [LONG_OBSERVATION]},
    {"name": "payments-service/v2", "entityType": "service", "observations": []},
    {"name": "Temporary Note", "entityType": "note", "observations": ["to be deleted"]},
    {"name": "Bob", "entityType": "person",
     "observations": ["Line one\nline two\ttabbed", "Uses <angle> brackets & {braces}"]},
]

RELATIONS = [
    {"from": "Ada Lovelace", "to": "Churn Pipeline 🚀", "relationType": "works on"},
    {"from": "  Grace   Hopper  ", "to": "Ada Lovelace", "relationType": "mentors"},
    {"from": "Zoë Çelik", "to": "東京プロジェクト", "relationType": "leads"},
    {"from": "Churn Pipeline 🚀", "to": "payments-service/v2", "relationType": "depends-on"},
    {"from": "O'Brien & Sons, Ltd.", "to": "Bob", "relationType": "employs"},
    {"from": "Bob", "to": "Temporary Note", "relationType": "wrote"},
    {"from": "Bob", "to": "Ada Lovelace", "relationType": "knows"},
    # The server does not check that the ends exist.
    {"from": "Ada Lovelace", "to": "Analytical Engine Society", "relationType": "member of"},
]


async def drive(server: StdioServerParameters) -> None:
    async with stdio_client(server) as (read, write), ClientSession(read, write) as session:
        await session.initialize()

        async def call(tool: str, **arguments) -> str:
            result = await session.call_tool(tool, arguments)
            text = "".join(getattr(part, "text", "") for part in result.content)
            if result.is_error:
                raise RuntimeError(f"{tool} failed: {text}")
            return text

        await call("create_entities", entities=ENTITIES)
        await call("create_relations", relations=RELATIONS)
        await call("add_observations", observations=[
            {"entityName": "Ada Lovelace", "contents": ["Met Babbage in 1833", "Prefers Polars over pandas"]},
            {"entityName": "payments-service/v2", "contents": ["Owned by the payments team"]},
        ])
        await call("delete_entities", entityNames=["Temporary Note"])  # takes its relation with it
        await call("delete_observations", deletions=[
            {"entityName": "Zoë Çelik", "observations": ["Speaks Türkçe and Deutsch"]}])
        await call("delete_relations", relations=[
            {"from": "Bob", "to": "Ada Lovelace", "relationType": "knows"}])
        graph = json.loads(await call("read_graph"))
        print(f"the server holds {len(graph['entities'])} entities and {len(graph['relations'])} relations")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=FIXTURE, help="the JSONL file to write (replaced)")
    args = parser.parse_args()
    out: Path = args.out.resolve()
    out.parent.mkdir(parents=True, exist_ok=True)
    out.unlink(missing_ok=True)
    with tempfile.TemporaryDirectory(prefix="server-memory-") as npm_dir:
        subprocess.run(["npm", "install", "--no-audit", "--no-fund", "--prefix", npm_dir, f"{PACKAGE}@{VERSION}"],
                       check=True, stdout=subprocess.DEVNULL)
        entry = Path(npm_dir) / "node_modules" / PACKAGE / "dist" / "index.js"
        node = shutil.which("node") or "node"
        asyncio.run(drive(StdioServerParameters(command=node, args=[str(entry)],
                                                env={"MEMORY_FILE_PATH": str(out)})))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
