"""Operation fields as command-line flags: how a JSON Schema property becomes a click option and
how its text comes back as the argument's value (scalars as typed, nested values as JSON)."""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass, field
from typing import Any

import click

from krabs.client_errors import InvalidArgument

#: The CLI's own options. An operation field of the same name keeps the plain flag (``krabs action
#: list --run R`` filters by run); the option then becomes ``--krabs-<name>``.
UTILITY = ("json", "dry-run", "idempotency-key", "run", "output")
RESERVED = {"help"}


@dataclass
class FieldSpec:
    """One input field as a flag: how to read it from the command line."""

    name: str
    kind: str  # str, int, float, bool, choice, array, json
    help: str = ""
    choices: tuple[str, ...] = ()
    item_kind: str = "str"
    required: bool = False
    param: str = ""
    flags: list[str] = field(default_factory=list)


def unwrap(prop: dict[str, Any]) -> dict[str, Any]:
    """``anyOf: [X, null]`` → X (keeping the outer description); several real options → ``{}``."""
    options = [p for p in prop.get("anyOf", []) if p.get("type") != "null"]
    if "anyOf" not in prop:
        return prop
    if len(options) != 1:
        return {k: v for k, v in prop.items() if k != "anyOf"}
    return {**options[0], **{k: v for k, v in prop.items() if k not in ("anyOf", "default")}}


def kind_of(prop: dict[str, Any]) -> tuple[str, tuple[str, ...]]:
    prop = unwrap(prop)
    if "enum" in prop and all(isinstance(v, str) for v in prop["enum"]):
        return "choice", tuple(prop["enum"])
    return {"string": "str", "integer": "int", "number": "float", "boolean": "bool"}.get(
        str(prop.get("type")), "array" if prop.get("type") == "array" else "json"
    ), ()


def field_specs(entry: dict[str, Any]) -> list[FieldSpec]:
    schema = entry.get("input", {})
    required = set(schema.get("required", []))
    specs = []
    for name, prop in schema.get("properties", {}).items():
        if name == "dry_run":
            continue
        kind, choices = kind_of(prop)
        item_kind = "str"
        if kind == "array":
            item_kind, choices = kind_of(unwrap(prop).get("items", {}))
        dashed = name.replace("_", "-")
        if name in RESERVED:
            dashed = f"arg-{dashed}"
        flags = [f"--{dashed}"] + ([f"--{name}"] if dashed != name else [])
        help_text = str(prop.get("description") or prop.get("title") or "")
        if kind == "json":
            help_text += " (JSON)"
        elif kind == "array" and item_kind in ("json", "array"):
            help_text += " (JSON list, or repeat the flag with one JSON object each)"
        elif kind == "array":
            help_text += " (repeat the flag, or give a JSON list)"
        if name in required:
            help_text += " [required]"
        specs.append(FieldSpec(name, kind, help_text.strip(), choices, item_kind, name in required))
        specs[-1].param, specs[-1].flags = f"f_{name}", flags
    return specs


def identity_kinds(entry: dict[str, Any], specs: list[FieldSpec]) -> tuple[str | None, list[str]]:
    """The identity field (``identity`` or ``identities``) and the kinds that get a shorthand flag."""
    props = entry.get("input", {}).get("properties", {})
    for target in ("identity", "identities"):
        if target not in props:
            continue
        prop = unwrap(props[target])
        shape = unwrap(prop.get("items", {})) if target == "identities" else prop
        kinds = unwrap(shape.get("properties", {}).get("kind", {})).get("enum", [])
        taken = {s.name for s in specs} | RESERVED | set(UTILITY)
        taken |= {f.lstrip("-") for s in specs for f in s.flags}
        return target, [k for k in kinds if isinstance(k, str) and k not in taken]
    return None, []


def read_json(raw: str, param: str) -> Any:
    """JSON text, ``@path`` to read a file, or ``-`` for stdin."""
    try:
        if raw == "-":
            raw = sys.stdin.read()
        elif raw.startswith("@"):
            with open(raw[1:], encoding="utf-8") as fh:
                raw = fh.read()
        return json.loads(raw)
    except OSError as exc:
        raise InvalidArgument(
            "invalid_argument", f"cannot read {raw[1:]!r}: {exc.strerror}", param=param
        ) from None
    except json.JSONDecodeError as exc:
        raise InvalidArgument(
            "invalid_argument",
            f"{param} is not valid JSON: {exc.msg} at column {exc.colno}",
            param=param,
        ) from None


def convert(spec: FieldSpec, value: Any) -> Any:
    if spec.kind == "json":
        return read_json(value, spec.name)
    if spec.kind != "array":
        return value
    items: list[Any] = []
    for raw in value:
        if raw.lstrip().startswith("[") or spec.item_kind in ("json", "array"):
            parsed = read_json(raw, spec.name)
            items.extend(parsed if isinstance(parsed, list) else [parsed])
        elif spec.item_kind == "int":
            items.append(_number(raw, int, spec.name))
        elif spec.item_kind == "float":
            items.append(_number(raw, float, spec.name))
        else:
            items.append(raw)
    return items


def _number(raw: str, kind: type, param: str) -> Any:
    try:
        return kind(raw)
    except ValueError:
        raise InvalidArgument(
            "invalid_argument", f"{param} items must be numbers, not {raw!r}", param=param
        ) from None


def option_for(spec: FieldSpec) -> click.Option:
    if spec.kind == "bool":
        negatives = [f"--no-{f[2:]}" for f in spec.flags]
        decls = [f"{f}/{n}" for f, n in zip(spec.flags, negatives, strict=True)]
        return click.Option([*decls, spec.param], default=None, help=spec.help)
    click_type: Any = {
        "int": click.INT,
        "float": click.FLOAT,
        "choice": click.Choice(spec.choices),
    }.get(spec.kind, click.STRING)
    if spec.kind == "array" and spec.choices:
        click_type = click.STRING
    multiple = spec.kind == "array"
    return click.Option(
        [*spec.flags, spec.param], type=click_type, multiple=multiple, help=spec.help
    )
