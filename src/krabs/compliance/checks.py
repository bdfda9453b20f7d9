"""The five properties, checked for one operation over one transport. HTTP is the reference leg: it
proves each property directly. Another transport (CLI, MCP) proves the same properties for its own
call, and that its results equal HTTP's apart from generated ids, timestamps, hashes and tokens:
its write is replayed over HTTP with the same Idempotency-Key, which succeeds only if that
transport sent exactly the same arguments and the key; its dry-run plan and reads are compared
with HTTP's in the same state."""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from krabs.compliance.legs import HttpLeg, Leg, Reply

PROPERTIES = ("intent", "idempotency", "dry_run", "schema", "audit", "parity")
NAME = re.compile(r"^[a-z][A-Za-z_]*\.[a-z][a-z0-9_]*$")
UNKNOWN_FIELD = "compliance_unknown_field"

_ID = re.compile(r"\b[a-z][a-z]*_[0-9A-HJKMNP-TV-Z]{26}\b")
_TS = re.compile(r"\d{4}-?\d{2}-?\d{2}T\d{2}:?\d{2}:?\d{2}(\.?\d+)?(Z|[+-]\d{2}:?\d{2})?")
_DIGEST = re.compile(r"\b[0-9a-f]{64}\b")
_TOKEN = re.compile(r"(undo|krabs_sk)_[A-Za-z0-9_\-…]+")
_VOLATILE_KEYS = {"id", "hash", "prev_hash", "secret", "undo_token", "request_id", "prefix"}


def normalize(value: Any, key: str = "") -> Any:
    """Replace what legitimately differs between two equivalent calls: generated ids, timestamps,
    hashes, tokens and secrets (shown once, redacted on replay)."""
    if isinstance(value, dict):
        return {k: normalize(v, k) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [normalize(v, key) for v in value]
    if isinstance(value, str):
        if (
            key in _VOLATILE_KEYS
            or key.endswith(("_id", "_at", "_token", "_digest"))
            or value == "[redacted]"
        ):
            return "<volatile>"
        value = _DIGEST.sub("<digest>", _ID.sub("<id>", value))
        return _TOKEN.sub("<token>", _TS.sub("<ts>", value))
    return value


@dataclass
class Cell:
    status: str  # pass, fail, n/a
    note: str = ""


@dataclass
class Row:
    op: str
    transport: str
    cells: dict[str, Cell] = field(default_factory=dict)

    def set(self, prop: str, ok: bool, note: str = "") -> None:
        """A property passes only if every check of it passes; the first failure's note is kept."""
        current = self.cells.get(prop)
        if current is not None and current.status == "fail":
            return
        self.cells[prop] = Cell("pass" if ok else "fail", "" if ok else note)

    def na(self, prop: str) -> None:
        self.cells.setdefault(prop, Cell("n/a"))

    def fail_all(self, note: str) -> None:
        for prop in PROPERTIES:
            self.cells[prop] = Cell("fail", note)

    @property
    def failed(self) -> bool:
        return any(c.status == "fail" for c in self.cells.values())


class Probe:
    """Reads over HTTP that observe the account: the audit chain's head and single records."""

    def __init__(self, http: HttpLeg, schema: dict[str, Any]) -> None:
        self.http, self.ops = http, schema["operations"]

    def head(self) -> int:
        """The newest action's sequence number: the count of actions in the account's chain."""
        page = self.http.setup("action.list", {"limit": 1})
        return int(page["data"][0]["seq"]) if page["data"] else 0

    def get(self, noun: str, id_: str) -> Reply | None:
        if f"{noun}.get" not in self.ops:
            return None
        return self.http.call(f"{noun}.get", {"id": id_})


def validates(schema: dict[str, Any], value: Any) -> str | None:
    """None when ``value`` matches the JSON Schema, else why not."""
    import jsonschema  # installed with the mcp SDK

    errors = sorted(jsonschema.Draft202012Validator(schema).iter_errors(value), key=str)
    if not errors:
        return None
    first = errors[0]
    return f"{'/'.join(map(str, first.absolute_path)) or '<root>'}: {first.message[:200]}"


def intent(row: Row, name: str, entry: dict[str, Any]) -> None:
    ok = bool(NAME.match(name)) and bool(entry.get("summary"))
    ok = ok and entry.get("input", {}).get("type") == "object" and "output" in entry
    ok = ok and bool(entry.get("errors"))
    row.set(
        "intent",
        ok,
        f"{name}: not noun.verb, or its schema entry lacks summary/input/output/errors",
    )


def hostile(row: Row, leg: Leg, name: str, args: dict[str, Any], codes: set[str]) -> Reply:
    """An unknown argument must be refused as invalid_argument naming it (a listed code)."""
    reply = leg.call(name, {**args, UNKNOWN_FIELD: 1})
    error = reply.error or {}
    ok = error.get("code") == "invalid_argument" and error.get("param") == UNKNOWN_FIELD
    ok = ok and "invalid_argument" in codes
    row.set("schema", ok, f"an unknown argument gave {reply.describe()}")
    return reply


def other_bodies(
    entry: dict[str, Any], args: dict[str, Any], rerun: Callable[[], dict[str, Any]]
) -> Iterator[dict[str, Any]]:
    """Different bodies that should still validate: a free-text argument changed or added, else a
    fresh scenario run. The caller takes the first one the server does not reject as invalid."""
    props = entry["input"].get("properties", {})
    required = set(entry["input"].get("required", []))
    for key, prop in props.items():
        options = [p for p in prop.get("anyOf", [prop]) if p.get("type") == "string"]
        if len(options) != 1 or key == "dry_run":
            continue
        spec = options[0]
        if {"enum", "pattern", "format", "const"} & (set(spec) | set(prop)):
            continue
        value = args.get(key)
        if isinstance(value, str) and len(value) + 2 <= int(spec.get("maxLength", 10_000)):
            yield {**args, key: value + "-2"}
        elif key not in args and key not in required and int(spec.get("maxLength", 99)) >= 10:
            yield {**args, key: "compliance"}
    again = rerun()
    if again != args:
        yield again


def shape(value: Any) -> Any:
    """The structure of a value (keys and types), for results that no two calls share."""
    if isinstance(value, dict):
        return {k: shape(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return sorted({json.dumps(shape(v), sort_keys=True) for v in value})
    return type(value).__name__


def new_key() -> str:
    return f"compliance_{uuid.uuid4().hex}"


def same(a: Any, b: Any) -> bool:
    return bool(normalize(a) == normalize(b))
