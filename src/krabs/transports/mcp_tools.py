"""The MCP tool list, generated from the registry: one tool per operation.

Wire names replace the dot (``contact.create`` → ``contact_create``) because Claude Desktop and the
Anthropic and OpenAI APIs accept only ``^[a-zA-Z0-9_-]{1,64}$``; the dotted name stays the tool's
``title`` and ``_meta["krabs/op"]``. Schemas are the ``/v1/schema`` ones made flat — no ``$ref``, no
``anyOf``/``oneOf``/``allOf`` (``X | None`` becomes ``"type": [X, "null"]``) — because many MCP hosts
read only the simple subset of JSON Schema.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import mcp_types as types

from krabs.contract.registry import Operation, Registry
from krabs.contract.schema import input_schema, model_schema

TOOL_NAME = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")
#: Keep names short: some hosts prefix a server name to every tool name and cap the sum at 64.
MAX_NAME = 40
#: Bytes the whole ``tools/list`` result may take: hosts put it in every prompt, and some refuse
#: larger lists. Descriptions shrink to fit; the registry is never trimmed.
LIST_BUDGET = 56 * 1024
#: No description needs more than this many characters.
MAX_DESCRIPTION = 1200

#: ``dry_run`` and ``idempotency_key`` are explained once, in the server's instructions.
IDEMPOTENCY_KEY = {"type": "string"}
DRY_RUN = {"type": "boolean", "default": False}
_UNION_KEYS = ("anyOf", "oneOf")
#: Keywords that are documentation only; dropped from output schemas to keep the list small.
_DOC_KEYS = ("title", "description", "examples")


def tool_name(op_name: str) -> str:
    return op_name.replace(".", "_")


def flatten(node: Any, *, drop: tuple[str, ...] = ("title",)) -> Any:
    """A JSON Schema without unions: ``X | None`` becomes X with null allowed; other unions merge
    their types (a host that cannot read unions then at least sees every accepted type)."""
    if isinstance(node, list):
        return [flatten(v, drop=drop) for v in node]
    if not isinstance(node, dict):
        return node
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key in drop or key in (*_UNION_KEYS, "allOf", "discriminator", "$defs"):
            continue
        if key in ("properties", "patternProperties"):
            out[key] = {name: flatten(sub, drop=drop) for name, sub in value.items()}
        else:
            out[key] = flatten(value, drop=drop)
    for part in node.get("allOf", ()):
        out = {**flatten(part, drop=drop), **out}
    variants = [flatten(v, drop=drop) for key in _UNION_KEYS for v in node.get(key, ())]
    if variants:
        out = {**_merge(variants), **out}
    return out


def _merge(variants: list[dict[str, Any]]) -> dict[str, Any]:
    nullable = any(v.get("type") == "null" for v in variants)
    rest = [v for v in variants if v.get("type") != "null"]
    if len(rest) == 1:
        merged = dict(rest[0])
    else:
        kinds = [v.get("type") for v in rest]
        if not rest or any(k is None for k in kinds):
            return {}  # some variant accepts anything: say nothing rather than something false
        merged = {"type": sorted({t for k in kinds for t in (k if isinstance(k, list) else [k])})}
    if nullable:
        kind = merged.get("type")
        if isinstance(kind, str):
            merged["type"] = [kind, "null"]
        elif isinstance(kind, list) and "null" not in kind:
            merged["type"] = [*kind, "null"]
        if "enum" in merged and None not in merged["enum"]:
            merged["enum"] = [*merged["enum"], None]
    return merged


def tool_input_schema(op: Operation, *, describe: bool = True) -> dict[str, Any]:
    """The arguments' schema: shape, types, enums, bounds on numbers and (``describe``) each
    field's description. Length and pattern bounds stay in ``/v1/schema``; the engine's errors
    name them. An optional field whose default is null is sent as its plain type (omitting it is
    the same as null)."""
    schema = _lean(flatten(input_schema(op)), describe)
    schema["type"] = "object"
    schema.setdefault("properties", {})
    schema["additionalProperties"] = False
    if op.mutates:
        schema["properties"]["dry_run"] = DRY_RUN
        schema["properties"]["idempotency_key"] = IDEMPOTENCY_KEY
    return schema


_INPUT_KEYS = frozenset(
    (
        "type",
        "description",
        "enum",
        "const",
        "items",
        "properties",
        "required",
        "default",
        "minimum",
        "maximum",
    )
)


def _lean(node: Any, describe: bool) -> Any:
    if isinstance(node, list):
        return [_lean(v, describe) for v in node]
    if not isinstance(node, dict):
        return node
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key not in _INPUT_KEYS or (key == "description" and not describe):
            continue
        if key == "properties":
            required = set(node.get("required", ()))
            out[key] = {
                name: _optional(_lean(sub, describe), name in required)
                for name, sub in value.items()
            }
        else:
            out[key] = _lean(value, describe)
    return out


def _optional(prop: dict[str, Any], required: bool) -> dict[str, Any]:
    if required or "default" not in prop or prop["default"] is not None:
        return prop
    prop = {k: v for k, v in prop.items() if k != "default"}
    kind = prop.get("type")
    if isinstance(kind, list) and "null" in kind:
        rest = [k for k in kind if k != "null"]
        prop["type"] = rest[0] if len(rest) == 1 else rest
    if "enum" in prop:
        prop["enum"] = [v for v in prop["enum"] if v is not None]
    return prop


def tool_output_schema(op: Operation, *, depth: int = 2) -> dict[str, Any]:
    """The result's fields and their types, ``depth`` levels down (``/v1/schema`` has the rest).
    A mutation's schema requires nothing at its root, so a dry-run's plan validates too (a client
    checks every successful result against this schema)."""
    schema = _shallow(flatten(model_schema(op.output, "serialization"), drop=_DOC_KEYS), depth)
    schema["type"] = "object"
    if op.mutates:
        schema.pop("required", None)
    return schema


_SHAPE_KEYS = ("type", "properties", "items", "required", "enum", "const")


def _shallow(node: dict[str, Any], depth: int) -> dict[str, Any]:
    """Only the shape keywords, and below ``depth`` only the type."""
    if depth <= 0:
        return {"type": node["type"]} if "type" in node else {}
    out: dict[str, Any] = {k: v for k, v in node.items() if k in _SHAPE_KEYS}
    if "properties" in out:
        out["properties"] = {k: _shallow(v, depth - 1) for k, v in out["properties"].items()}
    if isinstance(out.get("items"), dict):
        out["items"] = _shallow(out["items"], depth - 1)
    if depth == 1:
        out.pop("required", None)
    return out


def tool_description(op: Operation, limit: int) -> str:
    """The summary, then as much of the docstring as ``limit`` characters allow."""
    text = op.summary.strip()
    body = " ".join(op.description.split())
    room = limit - len(text) - 2
    if body and body != text and room > 40:
        if len(body) > room:
            body = body[: room - 1].rsplit(" ", 1)[0] + "…"
        text = f"{text}\n\n{body}"
    return text


def make_tool(op: Operation, detail: Detail, description_limit: int) -> types.Tool:
    return types.Tool(
        name=tool_name(op.name),
        title=op.name,
        description=tool_description(op, description_limit),
        input_schema=tool_input_schema(op, describe=detail.field_descriptions),
        output_schema=tool_output_schema(op, depth=detail.output_depth),
        annotations=types.ToolAnnotations(
            read_only_hint=not op.mutates,
            destructive_hint=op.destructive,
            idempotent_hint=not op.mutates,
            open_world_hint=False,
        ),
        _meta={"krabs/op": op.name},
    )


@dataclass(frozen=True)
class Detail:
    output_depth: int
    field_descriptions: bool


#: From most to least detailed; the first whose schemas leave room for descriptions is used. An
#: agent needs the arguments' descriptions more than the result's shape (it sees the result).
DETAILS = (Detail(2, True), Detail(1, True), Detail(0, True), Detail(0, False))


def wire_size(tools: Iterable[types.Tool]) -> int:
    """Bytes of the ``tools/list`` result on the wire."""
    result = types.ListToolsResult(tools=list(tools))
    wire = result.model_dump(by_alias=True, mode="json", exclude_none=True)
    return len(json.dumps(wire, separators=(",", ":")))  # ASCII-escaped: the larger spelling


def build_tools(ops: list[Operation], budget: int) -> list[types.Tool]:
    """Every operation's tool, the whole list within ``budget`` bytes: the most detailed schemas
    that fit, then descriptions sharing what is left (the full text is in ``/v1/schema``)."""
    tools: list[types.Tool] = []
    for detail in DETAILS:
        tools = [make_tool(op, detail, 0) for op in ops]
        spare = budget - wire_size(tools)
        if spare > 120 * len(ops) or detail == DETAILS[-1]:
            break
    extra = min(MAX_DESCRIPTION, max(0, spare) // max(1, len(ops)))
    while extra > 0:
        longer = [make_tool(op, detail, len(op.summary) + extra) for op in ops]
        if wire_size(longer) <= budget:
            return longer
        extra -= 40
    return tools  # summaries only


@dataclass(frozen=True)
class Catalog:
    """The tools of one registry, built once; a toolset filter picks a subset by noun."""

    ops: dict[str, Operation]
    tools: dict[str, types.Tool]

    @classmethod
    def build(cls, registry: Registry, budget: int = LIST_BUDGET) -> Catalog:
        ops = {tool_name(op.name): op for op in registry}
        if len(ops) != len(registry):
            raise ValueError("two operations map to the same MCP tool name")
        for name in ops:
            if not TOOL_NAME.fullmatch(name) or len(name) >= MAX_NAME:
                raise ValueError(f"operation name {name!r} is not a valid MCP tool name")
        tools = build_tools(list(ops.values()), budget)
        return cls(ops=ops, tools={tool.name: tool for tool in tools})

    @property
    def toolsets(self) -> list[str]:
        return sorted({op.noun for op in self.ops.values()})

    def parse_toolsets(self, raw: str | Iterable[str] | None) -> frozenset[str] | None:
        """``"contact,deal"`` → those nouns; None or empty → every tool. Raises ``ValueError``
        naming the known toolsets for an unknown one."""
        if raw is None:
            return None
        parts = raw.split(",") if isinstance(raw, str) else list(raw)
        wanted = frozenset(p.strip() for p in parts if p.strip())
        if not wanted:
            return None
        unknown = sorted(wanted - set(self.toolsets))
        if unknown:
            raise ValueError(
                f"unknown toolset {', '.join(unknown)[:200]}; known: {', '.join(self.toolsets)}"
            )
        return wanted

    def listed(self, toolsets: frozenset[str] | None) -> list[types.Tool]:
        return [t for name, t in self.tools.items() if self.visible(name, toolsets)]

    def visible(self, name: str, toolsets: frozenset[str] | None) -> bool:
        op = self.ops.get(name)
        return op is not None and (toolsets is None or op.noun in toolsets)
