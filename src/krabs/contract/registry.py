"""The registry: one ``Operation`` per verb. The schema document, OpenAPI, MCP tools, CLI commands and
the SDK are all generated from it, so adding an operation is one handler plus its models."""

from __future__ import annotations

import hashlib
import inspect
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import BaseModel

from krabs.contract.errors import STATUS_BY_CODE

Scope = Literal["read", "write", "admin"]

#: Errors any call can meet before its handler runs.
COMMON_ERRORS: tuple[str, ...] = (
    "invalid_argument",
    "unauthenticated",
    "forbidden",
    "rate_limited",
    "payload_too_large",
    "run_closed",
    "run_cancelled",
    "internal",
)
#: Errors any mutation can meet in the engine (the writer, the idempotency step, the gate).
MUTATION_ERRORS: tuple[str, ...] = (
    "busy",
    "idempotency_key_in_use",
    "idempotency_key_reused",
    "approval_required",
    "approval_rejected",
)


@dataclass(frozen=True)
class Example:
    args: dict[str, Any]
    title: str = ""


@dataclass(frozen=True)
class Operation:
    name: str
    summary: str
    description: str
    input: type[BaseModel]
    output: type[BaseModel]
    handler: Callable[..., Any]
    scope: Scope
    mutates: bool
    destructive: bool
    added_in: str
    errors: tuple[str, ...]
    examples: tuple[Example, ...]
    audit_events: tuple[str, ...] = field(default=())
    #: Result fields never stored (audit payload, idempotent replay): secrets shown once.
    redact: tuple[str, ...] = field(default=())

    #: Text arguments stored as a digest and size (audit payload, run events): bulk inputs.
    digest_args: tuple[str, ...] = field(default=())

    def digested(self, args: dict[str, Any]) -> dict[str, Any]:
        """``args`` with each ``digest_args`` text replaced by ``{"sha256": …, "chars": n}``: the
        record says exactly what was sent without keeping a whole CSV in every copy."""
        if not self.digest_args:
            return args
        return {
            k: text_digest(v) if k in self.digest_args and isinstance(v, str) else v
            for k, v in args.items()
        }

    def redacted(self, result: dict[str, Any]) -> dict[str, Any]:
        if not self.redact:
            return result
        return {k: ("[redacted]" if k in self.redact else v) for k, v in result.items()}

    @property
    def noun(self) -> str:
        return self.name.split(".", 1)[0]

    @property
    def verb(self) -> str:
        return self.name.split(".", 1)[1]

    @property
    def all_errors(self) -> tuple[str, ...]:
        """Every code this operation can raise, in a stable order: its own, then the engine's."""
        extra = MUTATION_ERRORS if self.mutates else ()
        seen: dict[str, None] = dict.fromkeys((*self.errors, *extra, *COMMON_ERRORS))
        return tuple(seen)


def text_digest(text: str, chunk: int = 1 << 20) -> dict[str, Any]:
    """SHA-256 of the text's UTF-8 and its length in characters, hashed a slice at a time."""
    h = hashlib.sha256()
    for start in range(0, len(text), chunk):
        h.update(text[start : start + chunk].encode("utf-8", "surrogatepass"))
    return {"sha256": h.hexdigest(), "chars": len(text)}


class Registry:
    def __init__(self) -> None:
        self._ops: dict[str, Operation] = {}

    def add(self, op: Operation) -> None:
        if op.name in self._ops:
            raise ValueError(f"operation {op.name!r} registered twice")
        unknown = [code for code in op.errors if code not in STATUS_BY_CODE]
        if unknown:
            raise ValueError(f"{op.name}: unregistered error codes {unknown}")
        self._ops[op.name] = op

    def get(self, name: str) -> Operation | None:
        return self._ops.get(name)

    def __iter__(self) -> Iterator[Operation]:
        return iter(sorted(self._ops.values(), key=lambda op: op.name))

    def __len__(self) -> int:
        return len(self._ops)

    def names(self) -> list[str]:
        return sorted(self._ops)


REGISTRY = Registry()


def operation(
    name: str,
    *,
    summary: str,
    input: type[BaseModel],
    output: type[BaseModel],
    mutates: bool,
    scope: Scope | None = None,
    destructive: bool = False,
    added_in: str = "1.0",
    errors: tuple[str, ...] = (),
    examples: tuple[Example, ...] = (),
    redact: tuple[str, ...] = (),
    digest_args: tuple[str, ...] = (),
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Register ``fn(uow, args) -> dict`` as the handler of ``name``; its docstring is the description."""

    def register(fn: Callable[..., Any]) -> Callable[..., Any]:
        REGISTRY.add(
            Operation(
                name=name,
                summary=summary,
                description=inspect.getdoc(fn) or "",
                input=input,
                output=output,
                handler=fn,
                scope=scope or ("write" if mutates else "read"),
                mutates=mutates,
                destructive=destructive,
                added_in=added_in,
                errors=errors,
                examples=examples,
                audit_events=(name,) if mutates else (),
                redact=redact,
                digest_args=digest_args,
            )
        )
        return fn

    return register


def load_registry() -> Registry:
    """Import every operation module once, so the registry is complete."""
    import krabs.ops  # noqa: F401  (registers on import)

    return REGISTRY
