"""kgmem's capabilities as Claude tools: a registry, an executor bound to one space, and the SDK adapter.

Every tool is a name, a description written for Claude, a Pydantic input model (its JSON
schema is the tool's `input_schema`) and a handler. The executor answers `tool_use`
blocks with `tool_result` blocks and never raises for a bad call: invalid input, an
unknown tool and kgmem's own errors come back as `is_error` results that say what to fix,
so Claude can correct itself on the next turn.

    executor = ToolExecutor(registry(["core", "delegation"]), ToolContext(memory.space("acme")))  # agents/toolsets.py
    client.messages.create(..., tools=executor.definitions())
    executor.tool_results(message)                      # the user turn answering its tool_use blocks

    # or let the SDK run the loop:
    client.beta.messages.tool_runner(..., tools=executor.runner_tools()).until_done()
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import pydantic_core
from anthropic.lib.tools import BetaBuiltinFunctionTool, ToolError
from pydantic import BaseModel, ValidationError

from graph.audit import actor
from graph.errors import KgmemError, Unavailable
from graph.model import Provenance
from memory.schemas import tool_input_schema
from memory.service import SpaceMemory

log = logging.getLogger(__name__)

MAX_ERRORS_REPORTED = 10
MAX_RESULT_CHARS = 100_000  # a result Claude reads back: larger ones are cut with a note


# -- the context handlers run in ------------------------------------------------------------------

@dataclass
class ToolContext:
    """What a tool call acts on: one space's memory, and who is acting (stamped on every write).

    `extras` holds collaborators other tool modules need (an extractor, a specialist runner);
    handlers read them with `context.extra(name)`.
    """

    memory: SpaceMemory
    provenance: Provenance = field(default_factory=lambda: Provenance(source="claude"))
    extras: dict[str, Any] = field(default_factory=dict)
    _cache: dict[str, Any] = field(default_factory=dict, repr=False)

    @property
    def space(self) -> str:
        return self.memory.space

    def extra(self, name: str) -> Any:
        return self.extras.get(name)

    def cached(self, key: str, make: Callable[[], Any]) -> Any:
        """One instance per context of a helper object (a Delegations, an MlMemory)."""
        if key not in self._cache:
            self._cache[key] = make()
        return self._cache[key]


# -- tools and the registry ------------------------------------------------------------------------

Handler = Callable[[ToolContext, Any], Any]


@dataclass(frozen=True)
class Tool:
    """One capability. `read_only`, `destructive` and `idempotent` become MCP tool annotations."""

    name: str
    description: str
    input_model: type[BaseModel]
    handler: Handler
    title: str = ""
    read_only: bool = False
    destructive: bool = False
    idempotent: bool = False

    @cached_property
    def input_schema(self) -> dict[str, Any]:
        return tool_input_schema(self.input_model)

    def definition(self) -> dict[str, Any]:
        """The Messages API `tools[]` entry."""
        return {"name": self.name, "description": self.description, "input_schema": self.input_schema}


class ToolRegistry:
    """Tools by name, in the order they were added."""

    def __init__(self, tools: Iterable[Tool] = ()) -> None:
        self._tools: dict[str, Tool] = {}
        for tool in tools:
            self.add(tool)

    def add(self, tool: Tool) -> Tool:
        if tool.name in self._tools:
            raise ValueError(f"a tool named {tool.name!r} is already registered")
        self._tools[tool.name] = tool
        return tool

    def get(self, name: str) -> Tool | None:
        return self._tools.get(name)

    def names(self) -> list[str]:
        return list(self._tools)

    def only(self, names: Iterable[str]) -> ToolRegistry:
        """A registry with just these tools (in this registry's order); an unknown name is an error."""
        wanted = set(names)
        unknown = sorted(wanted - set(self._tools))
        if unknown:
            raise ValueError(f"no tools named {', '.join(unknown)}")
        return ToolRegistry(tool for name, tool in self._tools.items() if name in wanted)

    def __iter__(self):
        return iter(self._tools.values())

    def __len__(self) -> int:
        return len(self._tools)

    def __contains__(self, name: object) -> bool:
        return name in self._tools


# -- outcomes ---------------------------------------------------------------------------------------

@dataclass(frozen=True)
class ToolOutcome:
    """A tool call's answer: JSON text (or an error message) for Claude, and the value behind it."""

    content: str
    is_error: bool = False
    value: Any = None

    def as_tool_result(self, tool_use_id: str) -> dict[str, Any]:
        result: dict[str, Any] = {"type": "tool_result", "tool_use_id": tool_use_id, "content": self.content}
        if self.is_error:
            result["is_error"] = True
        return result


def to_json_text(value: Any) -> str:
    """A handler's return value as compact JSON text; nulls are left out, strings pass as they are."""
    if isinstance(value, str):
        return value
    plain = _without_nulls(pydantic_core.to_jsonable_python(value, by_alias=True))
    text = json.dumps(plain, ensure_ascii=False, separators=(",", ":"))
    if len(text) > MAX_RESULT_CHARS:
        text = text[:MAX_RESULT_CHARS] + f"… [cut at {MAX_RESULT_CHARS} characters: ask for fewer items]"
    return text


def _without_nulls(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _without_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_without_nulls(v) for v in value]
    return value


# -- validation errors as instructions ----------------------------------------------------------------

def _location(loc: Sequence[Any]) -> str:
    """`("relations", 0, "type")` -> `relations[0].type`; a map key that is not a plain name is quoted:
    `metrics["AUC!"]`, and Pydantic's `[key]` marker (the key itself is wrong) becomes ` (the key)`."""
    out, about_key = "", False
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif part == "[key]":
            about_key = True
        elif re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", part):
            out += f".{part}" if out else part
        else:
            out += f"[{json.dumps(part, ensure_ascii=False)}]"
    return (out or "(input)") + (" (the key)" if about_key else "")


def _schema_at(schema: Mapping[str, Any], loc: Sequence[Any]) -> Mapping[str, Any] | None:
    """The schema node a validation error's location points at, following properties, items and unions.
    Pydantic puts union branch tags (`str`, `list[Message]`) into locations; those are skipped."""
    node: Mapping[str, Any] | None = schema
    for part in loc:
        if node is None:
            return None
        candidates = [node, *node.get("anyOf", ()), *node.get("oneOf", ())]
        following = None
        for candidate in candidates:
            if isinstance(part, int) and "items" in candidate:
                following = candidate["items"]
            elif isinstance(part, str) and part in candidate.get("properties", {}):
                following = candidate["properties"][part]
            elif isinstance(part, str) and isinstance(candidate.get("additionalProperties"), dict):
                following = candidate["additionalProperties"]
            if following is not None:
                break
        if following is not None:
            node = following
    return node


def _hint(error: Mapping[str, Any], schema: Mapping[str, Any]) -> str:
    loc = list(error["loc"])
    if error["type"] == "extra_forbidden":
        parent = _schema_at(schema, loc[:-1]) or {}
        allowed = ", ".join(parent.get("properties", {})) or "none"
        return f"remove it; the fields allowed here are: {allowed}"
    node = _schema_at(schema, loc) or {}
    description = node.get("description")
    if error["type"] == "missing":
        return f"add it ({description})" if description else "add it"
    return description or ""


def describe_invalid_input(name: str, schema: Mapping[str, Any], error: ValidationError) -> str:
    """Each invalid field of a call to tool `name` (whose input schema is `schema`), what is wrong with it
    and how to fix it, as lines Claude can act on."""
    items = error.errors(include_url=False)
    shown = items[:MAX_ERRORS_REPORTED]
    lines = [f"Invalid input for {name}: {len(items)} problem{'s' if len(items) != 1 else ''}."]
    for item in shown:
        got = "" if item["type"] == "missing" else f" (got {_short(json.dumps(item.get('input'), default=str))})"
        hint = _hint(item, schema)
        lines.append(f"- {_location(item['loc'])}: {item['msg']}{got}" + (f"; fix: {hint}" if hint else ""))
    if len(items) > len(shown):
        lines.append(f"- … and {len(items) - len(shown)} more")
    lines.append(f"Correct these fields and call {name} again; its input_schema lists every field.")
    return "\n".join(lines)


def _short(text: str, limit: int = 120) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


# -- the executor -----------------------------------------------------------------------------------

class ToolExecutor:
    """Runs tool calls against one `ToolContext`. Thread-safe as far as its handlers are."""

    def __init__(self, registry: ToolRegistry, context: ToolContext, *,
                 observer: Callable[[str, Any, ToolOutcome], None] | None = None) -> None:
        """`observer(name, input, outcome)` sees every call once it is answered (progress output, logs)."""
        self.registry = registry
        self.context = context
        self.observer = observer

    def definitions(self) -> list[dict[str, Any]]:
        return [tool.definition() for tool in self.registry]

    def run(self, name: str, tool_input: Any) -> ToolOutcome:
        """Validate `tool_input` against the tool's model and run it. Never raises for a bad call."""
        outcome = self._run(name, tool_input)
        if self.observer is not None:
            self.observer(name, tool_input, outcome)
        return outcome

    def _run(self, name: str, tool_input: Any) -> ToolOutcome:
        tool = self.registry.get(name)
        if tool is None:
            known = ", ".join(self.registry.names())
            return ToolOutcome(f"Unknown tool {name!r}. The tools are: {known}.", is_error=True)
        if tool_input is None:
            tool_input = {}
        if not isinstance(tool_input, Mapping):
            return ToolOutcome(
                f"Invalid input for {name}: the input must be a JSON object, not {type(tool_input).__name__}.",
                is_error=True)
        try:
            params = tool.input_model.model_validate(dict(tool_input))
        except ValidationError as exc:
            return ToolOutcome(describe_invalid_input(tool.name, tool.input_schema, exc), is_error=True)
        try:
            provenance = self.context.provenance
            with actor(operation=name, agent=provenance.agent, delegation_id=provenance.delegation_id):
                value = tool.handler(self.context, params)
        except ValidationError as exc:  # a model built inside the handler: still the caller's input
            return ToolOutcome(describe_invalid_input(tool.name, tool.input_schema, exc), is_error=True)
        except KgmemError as exc:
            return ToolOutcome(describe_error(name, exc), is_error=True)
        except Exception:  # noqa: BLE001 - a bug must not kill the agent's loop; it is logged with its trace
            log.exception("tool %s failed", name)
            return ToolOutcome(f"{name} failed with an internal error; it has been logged. "
                               "Try again later or continue without it.", is_error=True)
        return ToolOutcome(to_json_text(value), value=value)

    def tool_result(self, block: Any) -> dict[str, Any]:
        """The `tool_result` block answering one `tool_use` block (an SDK object or a dict)."""
        get = block.get if isinstance(block, Mapping) else lambda key: getattr(block, key, None)
        return self.run(get("name"), get("input")).as_tool_result(get("id"))

    def tool_results(self, message: Any) -> dict[str, Any] | None:
        """The user turn answering every `tool_use` block of an assistant message; None when it has none."""
        content = message.get("content") if isinstance(message, Mapping) else message.content
        blocks = [b for b in content or () if (b.get("type") if isinstance(b, Mapping) else b.type) == "tool_use"]
        if not blocks:
            return None
        return {"role": "user", "content": [self.tool_result(block) for block in blocks]}

    def runner_tools(self) -> list[RunnerTool]:
        """The tools as objects `client.beta.messages.tool_runner(tools=...)` runs itself."""
        return [RunnerTool(self, tool) for tool in self.registry]


def describe_error(name: str, exc: KgmemError) -> str:
    """What an agent reads when a tool fails: a dependency being down is said to be temporary."""
    if isinstance(exc, Unavailable):
        return (f"{name} is unavailable right now: {exc}. This is temporary ({exc.dependency} is down or busy): "
                "retry the same call in a few seconds.")
    return f"{name} failed: {exc}"


class RunnerTool(BetaBuiltinFunctionTool):
    """One kgmem tool for the SDK's tool runner: an error outcome becomes a ToolError, which the runner
    sends back as an `is_error` tool result with our message."""

    def __init__(self, executor: ToolExecutor, tool: Tool) -> None:
        self.executor = executor
        self.tool = tool

    def to_dict(self) -> dict[str, Any]:  # type: ignore[override]
        return self.tool.definition()

    @property
    def name(self) -> str:
        return self.tool.name

    def call(self, input: object) -> str:  # noqa: A002 - the SDK's parameter name
        outcome = self.executor.run(self.tool.name, input)
        if outcome.is_error:
            raise ToolError(outcome.content)
        return outcome.content
