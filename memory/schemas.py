"""JSON Schemas of Pydantic models as tool definitions: the one way kgmem builds them.

Claude's tools, the MCP server's tools (the reference memory server's nine included) and the
extraction tool all take their `input_schema` from their input model, and MCP's `outputSchema`
from the result model: `$ref`s inlined, Pydantic's titles dropped. The API accepts `$defs` (the
SDK's own tool helper sends them), but a flat schema is easier for a model to follow, and the
titles only repeat property names.
"""

from __future__ import annotations

import copy
from typing import Any, Literal

from pydantic import BaseModel

_SCHEMA_MAPS = ("properties", "$defs", "patternProperties")  # values are name -> schema maps
_SCHEMA_LISTS = ("anyOf", "allOf", "oneOf", "prefixItems")
_SCHEMA_VALUES = ("items", "additionalProperties", "propertyNames", "not")


def tool_input_schema(model: type[BaseModel]) -> dict[str, Any]:
    """What a call to the tool may send: `model`'s validation schema, self-contained."""
    schema = _self_contained(model, "validation")
    schema.setdefault("properties", {})
    return schema


def tool_output_schema(model: type[BaseModel]) -> dict[str, Any]:
    """What the tool answers (MCP `outputSchema`): `model`'s serialised shape, self-contained."""
    return _self_contained(model, "serialization")


def _self_contained(model: type[BaseModel], mode: Literal["validation", "serialization"]) -> dict[str, Any]:
    schema = model.model_json_schema(mode=mode, by_alias=True)
    defs = schema.pop("$defs", {})
    return _clean(schema, defs, ())


def _clean(node: dict[str, Any], defs: dict[str, Any], resolving: tuple[str, ...]) -> dict[str, Any]:
    node = dict(node)
    ref = node.pop("$ref", None)
    if ref is not None:
        name = ref.removeprefix("#/$defs/")
        if name in resolving:
            raise ValueError(f"recursive schema reference {ref} cannot be inlined")
        # Keywords next to a $ref (a field's description) win over the referenced model's.
        node = {**_clean(copy.deepcopy(defs[name]), defs, (*resolving, name)), **node}
    node.pop("title", None)
    for key, value in node.items():
        if key in _SCHEMA_MAPS:
            node[key] = {name: _clean(sub, defs, resolving) for name, sub in value.items()}
        elif key in _SCHEMA_LISTS:
            node[key] = [_clean(sub, defs, resolving) for sub in value]
        elif key in _SCHEMA_VALUES and isinstance(value, dict):
            node[key] = _clean(value, defs, resolving)
    return node
