"""Claude's memory tool on the graph, checked command by command against the SDK's own filesystem
implementation run side by side in tmp_path, plus what only the graph gives: versions, spaces,
stores, size limits, concurrent writers, and the SDK's tool runner over the fake transport."""

from __future__ import annotations

import re
import threading
import uuid

import pytest
from anthropic.lib.tools import ToolError
from anthropic.lib.tools._beta_builtin_memory_tool import BetaLocalFilesystemMemoryTool

from agents.claude_memory import GraphMemoryTool, canonical_path
from fakes import FakeAnthropicTransport
from graph.errors import InvalidInput, NotFound

NOTES = "line one\nline two\nline three\n"

# (command input, why it is in the script)
SCRIPT: list[dict] = [
    {"command": "view", "path": "/memories"},  # empty directory
    {"command": "create", "path": "/memories/notes.md", "file_text": NOTES},
    {"command": "create", "path": "/memories/notes.md", "file_text": "again"},  # already exists
    {"command": "create", "path": "/memories/projects/churn/plan.md", "file_text": "# Plan\n- retrain\n"},
    {"command": "create", "path": "/memories/projects/churn/deep/x.md", "file_text": "three levels down"},
    {"command": "create", "path": "/memories/projects/a.md", "file_text": ""},
    {"command": "create", "path": "/memories/.hidden/secret.md", "file_text": "not listed"},
    {"command": "create", "path": "/memories/.dotfile", "file_text": "not listed"},
    {"command": "create", "path": "/memories/café.md", "file_text": "crème brûlée ☕\n" * 100},
    {"command": "create", "path": "/memories/big.txt", "file_text": "x" * 1536},
    {"command": "create", "path": "/memories", "file_text": "the root"},  # the directory exists
    {"command": "create", "path": "/memories/projects", "file_text": "a directory"},
    {"command": "view", "path": "/memories"},
    {"command": "view", "path": "/memories/"},
    {"command": "view", "path": "/memories/projects"},
    {"command": "view", "path": "/memories/.hidden"},
    {"command": "view", "path": "/memories/notes.md"},
    {"command": "view", "path": "/memories/notes.md", "view_range": [2, 3]},
    {"command": "view", "path": "/memories/notes.md", "view_range": [2, -1]},
    {"command": "view", "path": "/memories/notes.md", "view_range": [0, 1]},
    {"command": "view", "path": "/memories/notes.md", "view_range": [3, 100]},
    {"command": "view", "path": "/memories/projects/a.md"},
    {"command": "view", "path": "/memories/missing.md"},
    {"command": "view", "path": "/memories/nope/missing.md"},
    {"command": "str_replace", "path": "/memories/notes.md", "old_str": "line two", "new_str": "line 2"},
    {"command": "str_replace", "path": "/memories/notes.md", "old_str": "line", "new_str": "row"},
    {"command": "str_replace", "path": "/memories/notes.md", "old_str": "absent", "new_str": "x"},
    {"command": "str_replace", "path": "/memories/projects", "old_str": "a", "new_str": "b"},
    {"command": "str_replace", "path": "/memories/missing.md", "old_str": "a", "new_str": "b"},
    {"command": "str_replace", "path": "/memories/projects/a.md", "old_str": "", "new_str": "filled\n"},
    {"command": "str_replace", "path": "/memories/big.txt", "old_str": "xx", "new_str": "y"},
    {"command": "insert", "path": "/memories/notes.md", "insert_line": 0, "insert_text": "first\n"},
    {"command": "insert", "path": "/memories/notes.md", "insert_line": 99, "insert_text": "never"},
    {"command": "insert", "path": "/memories/notes.md", "insert_line": -1, "insert_text": "never"},
    {"command": "insert", "path": "/memories/notes.md", "insert_line": 4, "insert_text": "last"},
    {"command": "insert", "path": "/memories/projects", "insert_line": 0, "insert_text": "x"},
    {"command": "insert", "path": "/memories/missing.md", "insert_line": 0, "insert_text": "x"},
    {"command": "insert", "path": "/memories/projects/churn/deep/x.md", "insert_line": 1, "insert_text": "more"},
    {"command": "view", "path": "/memories/notes.md"},
    {"command": "view", "path": "/memories/projects/churn/deep/x.md"},
    {"command": "rename", "old_path": "/memories/notes.md", "new_path": "/memories/archive/notes-2026.md"},
    {"command": "rename", "old_path": "/memories/projects", "new_path": "/memories/work/projects"},
    {"command": "rename", "old_path": "/memories/missing.md", "new_path": "/memories/newdir/x.md"},
    {"command": "rename", "old_path": "/memories/café.md", "new_path": "/memories/big.txt"},
    {"command": "rename", "old_path": "/memories", "new_path": "/memories/elsewhere"},
    {"command": "rename", "old_path": "/memories/big.txt", "new_path": "/memories"},
    {"command": "view", "path": "/memories"},
    {"command": "view", "path": "/memories/work/projects/churn/plan.md"},
    {"command": "delete", "path": "/memories/work/projects/churn"},
    {"command": "delete", "path": "/memories/archive/notes-2026.md"},
    {"command": "delete", "path": "/memories/missing.md"},
    {"command": "delete", "path": "/memories"},
    {"command": "delete", "path": "/memories/"},
    {"command": "view", "path": "/memories"},
    {"command": "view", "path": "/memories/archive"},
    # Paths: outside, escaping, resolving back inside, and the reference's prefix quirk.
    {"command": "view", "path": "/etc/passwd"},
    {"command": "create", "path": "memories/x.md", "file_text": "relative"},
    {"command": "create", "path": "/memories/../etc/x.md", "file_text": "escape"},
    {"command": "view", "path": "/memories/.."},
    {"command": "delete", "path": "/memories/work/../../outside"},
    {"command": "create", "path": "/memories/../memories/back.md", "file_text": "inside again"},
    {"command": "create", "path": "/memoriesfoo/quirk.md", "file_text": "the reference maps this under /memories"},
    {"command": "create", "path": "/memories//double//slash.md", "file_text": "slashes"},
    {"command": "view", "path": "/memories"},
    {"command": "view", "path": "/memories/foo/quirk.md"},
    {"command": "rename", "old_path": "/memories/work", "new_path": "/etc/work"},
    {"command": "rename", "old_path": "/memories/../x", "new_path": "/memories/y"},
]


def outcome(tool, command: dict) -> tuple[str, str]:
    try:
        return "ok", tool.call(dict(command))
    except ToolError as error:
        return "error", str(error)


DIRECTORY_LINE = re.compile(r"^[0-9.]+[BKMG]\t(?P<path>\S.*)$")


def comparable(text: str) -> str:
    """A directory's own size depends on the filesystem; every other byte must match."""
    if not text.startswith("Here're the files and directories"):
        return text
    lines = text.split("\n")
    root = lines[1].split("\t", 1)[1]
    out = lines[:1]
    for line in lines[1:]:
        match = DIRECTORY_LINE.match(line)
        if match and (match["path"] == root or match["path"].endswith("/")):
            line = "<dir>\t" + match["path"]
        out.append(line)
    return "\n".join(out)


@pytest.fixture
def tool(graph) -> GraphMemoryTool:
    return GraphMemoryTool(graph)


@pytest.fixture
def other_space(graph_store, gateway):
    name = f"test-{uuid.uuid4().hex[:12]}"
    yield graph_store.space(name)
    gateway.write("MATCH (n {space: $space}) DETACH DELETE n", space=name)


# -- the reference, side by side ------------------------------------------------------------------

def test_every_command_answers_as_the_sdk_filesystem_implementation(tool, tmp_path):
    reference = BetaLocalFilesystemMemoryTool(base_path=str(tmp_path / "reference"))
    assert tool.to_dict() == reference.to_dict() == {"type": "memory_20250818", "name": "memory"}
    for step, command in enumerate(SCRIPT):
        expected_kind, expected = outcome(reference, command)
        kind, got = outcome(tool, command)
        assert (kind, comparable(got)) == (expected_kind, comparable(expected)), f"step {step}: {command}"
    # Both scripts ended in the same tree, files and contents alike.
    on_disk = sorted(str(p.relative_to(tmp_path / "reference")) for p in (tmp_path / "reference").rglob("*"))
    assert comparable(outcome(tool, {"command": "view", "path": "/memories"})[1]) == comparable(
        outcome(reference, {"command": "view", "path": "/memories"})[1])
    assert "memories/foo/quirk.md" in on_disk and "memories/double/slash.md" in on_disk


def test_results_cover_each_error_the_reference_gives(tool):
    """The script above reaches every message; these are the texts Claude sees, spelled out."""
    tool.call({"command": "create", "path": "/memories/a.md", "file_text": "x\nx\n"})
    cases = {
        ("view", "/memories/none"): "The path /memories/none does not exist. Please provide a valid path.",
        ("create", "/memories/a.md"): "File /memories/a.md already exists",
        ("delete", "/memories"): "Cannot delete the /memories directory itself",
        ("delete", "/memories/none"): "The path /memories/none does not exist",
        ("view", "/tmp/a.md"): "Path must start with /memories, got: /tmp/a.md",
        ("view", "/memories/../../a.md"): "Path /memories/../../a.md would escape /memories directory",
    }
    for (command, path), message in cases.items():
        with pytest.raises(ToolError) as raised:
            tool.call({"command": command, "path": path, "file_text": ""})
        assert str(raised.value) == message
    with pytest.raises(ToolError, match=re.escape("Multiple occurrences of old_str `x` in lines: 1, 2. Please ensure")):
        tool.call({"command": "str_replace", "path": "/memories/a.md", "old_str": "x", "new_str": "y"})
    with pytest.raises(ToolError, match=re.escape("The destination /memories/a.md already exists")):
        tool.call({"command": "rename", "old_path": "/memories/none", "new_path": "/memories/a.md"})
    with pytest.raises(ToolError, match=re.escape("Cannot rename the /memories directory itself")):
        tool.call({"command": "rename", "old_path": "/memories/", "new_path": "/memories/b"})


def test_paths_resolve_as_the_reference_does():
    assert canonical_path("/memories") == "/memories"
    assert canonical_path("/memories/") == "/memories"
    assert canonical_path("/memories//a//b/") == "/memories/a/b"
    assert canonical_path("/memories/a/../b.md") == "/memories/b.md"
    assert canonical_path("/memoriesfoo") == "/memories/foo"
    for bad, message in [("/memories/../x", "would escape /memories directory"), ("x", "must start with /memories"),
                         ("/memories/a\x00b", "contains a NUL character"), ("/memories/" + "a" * 1100, "longer than")]:
        with pytest.raises(ToolError, match=re.escape(message)):
            canonical_path(bad)


# -- the graph's own guarantees ---------------------------------------------------------------------

def test_every_change_is_a_version_and_deleted_files_keep_their_history(tool, gateway, space):
    tool.call({"command": "create", "path": "/memories/plan.md", "file_text": "a\nb\n"})
    tool.call({"command": "str_replace", "path": "/memories/plan.md", "old_str": "b", "new_str": "B"})
    tool.call({"command": "insert", "path": "/memories/plan.md", "insert_line": 2, "insert_text": "c"})
    assert tool.read("/memories/plan.md") == "a\nB\nc\n"
    assert tool.read("/memories/plan.md", version=1) == "a\nb\n"
    tool.call({"command": "rename", "old_path": "/memories/plan.md", "new_path": "/memories/done/plan.md"})
    tool.call({"command": "delete", "path": "/memories/done"})
    with pytest.raises(NotFound):
        tool.read("/memories/done/plan.md")

    history = tool.history("/memories/plan.md")
    assert [(v.version, v.command, v.path, v.content) for v in history] == [
        (1, "create", "/memories/plan.md", "a\nb\n"),
        (2, "str_replace", "/memories/plan.md", "a\nB\n"),
        (3, "insert", "/memories/plan.md", "a\nB\nc\n"),
        (4, "rename", "/memories/done/plan.md", "a\nB\nc\n"),
        (5, "delete", "/memories/done/plan.md", "a\nB\nc\n"),
    ]
    assert tool.history("/memories/done/plan.md") == history

    # A new file at the old path starts its own history; the deleted one keeps its.
    tool.call({"command": "create", "path": "/memories/plan.md", "file_text": "fresh"})
    assert [v.command for v in tool.history("/memories/plan.md")] == [
        "create", "str_replace", "insert", "rename", "delete", "create"]
    assert len({v.file_id for v in tool.history("/memories/plan.md")}) == 2

    rows = gateway.rows(
        "MATCH (n) WHERE n.space = $space AND (n:MemoryFile OR n:MemoryFileVersion OR n:MemoryDir OR n:MemoryStore) "
        "RETURN count(n) AS n, count(CASE WHEN n:Entity THEN 1 END) AS entities", space=space)
    assert rows[0]["n"] > 0 and rows[0]["entities"] == 0


def test_memory_files_are_not_entities_and_stay_in_their_space_and_store(tool, graph, other_space):
    tool.call({"command": "create", "path": "/memories/secret.md", "file_text": "the launch is in May"})
    assert graph.list_entities().items == [] and graph.search("launch") == []

    theirs = GraphMemoryTool(other_space)
    assert outcome(theirs, {"command": "view", "path": "/memories/secret.md"})[0] == "error"
    assert outcome(theirs, {"command": "delete", "path": "/memories/secret.md"}) == (
        "error", "The path /memories/secret.md does not exist")
    assert outcome(theirs, {"command": "view", "path": "/memories"})[1].endswith("\t/memories")  # empty
    # Same path in the other space: its own file.
    theirs.call({"command": "create", "path": "/memories/secret.md", "file_text": "theirs"})
    assert tool.read("/memories/secret.md") == "the launch is in May"

    agent_b = GraphMemoryTool(graph, store="agent-b")
    assert outcome(agent_b, {"command": "view", "path": "/memories/secret.md"})[0] == "error"
    agent_b.call({"command": "create", "path": "/memories/secret.md", "file_text": "b's own"})
    assert tool.read("/memories/secret.md") == "the launch is in May"
    assert agent_b.read("/memories/secret.md") == "b's own"
    with pytest.raises(InvalidInput, match="memory store name"):
        GraphMemoryTool(graph, store="../x")


def test_files_over_the_size_limit_are_refused(graph):
    tool = GraphMemoryTool(graph, max_file_bytes=100)
    kind, message = outcome(tool, {"command": "create", "path": "/memories/a.md", "file_text": "é" * 51})
    assert (kind, message) == ("error", "File /memories/a.md would be 102 bytes, over the limit of 100 bytes for one "
                                        "memory file; keep it shorter or split it into several files")
    tool.call({"command": "create", "path": "/memories/a.md", "file_text": "x" * 90})
    kind, message = outcome(tool, {"command": "insert", "path": "/memories/a.md", "insert_line": 1,
                                   "insert_text": "y" * 20})
    assert kind == "error" and "over the limit of 100 bytes" in message
    assert tool.read("/memories/a.md") == "x" * 90


def test_concurrent_edits_are_applied_one_after_another(tool):
    tool.call({"command": "create", "path": "/memories/log.md", "file_text": ""})
    errors: list[BaseException] = []

    def append(i: int) -> None:
        try:
            tool.call({"command": "insert", "path": "/memories/log.md", "insert_line": 0, "insert_text": f"entry {i}"})
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=append, args=(i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert sorted(tool.read("/memories/log.md").splitlines()) == sorted(f"entry {i}" for i in range(8))
    assert [v.version for v in tool.history("/memories/log.md")] == list(range(1, 10))


def test_the_sdk_tool_runner_drives_the_graph_memory_tool(tool):
    fake = FakeAnthropicTransport()
    fake.tool_use({"command": "view", "path": "/memories"}, name="memory")
    fake.tool_use({"command": "create", "path": "/memories/prefs.md", "file_text": "Prefers Polars\n"}, name="memory")
    fake.tool_use({"command": "view", "path": "/memories/../etc"}, name="memory")
    fake.text("Saved your preference.")
    final = fake.client().beta.messages.tool_runner(
        model="claude-sonnet-4-5", max_tokens=1024, tools=[tool],
        messages=[{"role": "user", "content": "Remember that I prefer Polars."}],
    ).until_done()

    assert final.content[0].text == "Saved your preference."
    assert fake.requests[0].body["tools"] == [{"type": "memory_20250818", "name": "memory"}]
    results = [request.messages[-1]["content"][0] for request in fake.requests[1:]]
    assert results[0]["content"].startswith("Here're the files and directories up to 2 levels deep in /memories")
    assert results[1]["content"] == "File created successfully at: /memories/prefs.md"
    assert results[2]["is_error"] is True
    assert results[2]["content"] == "Path /memories/../etc would escape /memories directory"
    assert tool.read("/memories/prefs.md") == "Prefers Polars\n"
