"""The typed, frozen call context that flows through the engine's steps. A step that learns something
(who the caller is, which run, the validated arguments) passes a new context on with ``evolve``."""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel

from krabs.contract.errors import KrabsError
from krabs.contract.ids import new_id

if TYPE_CHECKING:
    from krabs.contract.registry import Operation
    from krabs.engine.uow import UnitOfWork


@dataclass(frozen=True)
class Principal:
    """Who is calling: an API key of one account, acting as one agent."""

    account_id: str
    key_id: str | None
    agent_id: str
    scopes: frozenset[str]

    def allows(self, scope: str) -> bool:
        return scope in self.scopes


@dataclass(frozen=True)
class CallRequest:
    """What a transport hands the engine: the wire format already parsed, nothing decided."""

    op: str
    args: Any
    api_key: str | None = None
    #: Set only by trusted in-process callers (embedded CLI); skips key lookup.
    principal: Principal | None = None
    idempotency_key: str | None = None
    dry_run: bool = False
    run_id: str | None = None
    transport: str = "http"
    request_id: str = field(default_factory=lambda: new_id("request"))


@dataclass(frozen=True)
class Call:
    request: CallRequest
    started: float = field(default_factory=time.perf_counter)
    operation: Operation | None = None
    principal: Principal | None = None
    run_id: str | None = None
    args: BaseModel | None = None
    dry_run: bool = False
    uow: UnitOfWork | None = None

    def evolve(self, **changes: Any) -> Call:
        """A copy with ``changes``: ``dataclasses.replace`` without re-running ``__init__`` (this is
        called once per step on every call)."""
        if not _CALL_FIELDS.issuperset(changes):
            raise TypeError(f"Call has no field(s) {sorted(set(changes) - _CALL_FIELDS)}")
        new = object.__new__(Call)
        new.__dict__.update(self.__dict__)
        new.__dict__.update(changes)
        return new

    @property
    def op(self) -> Operation:
        assert self.operation is not None, "operation is resolved before any step needs it"
        return self.operation

    @property
    def who(self) -> Principal:
        assert self.principal is not None, "authentication runs first"
        return self.principal


_CALL_FIELDS = frozenset(f.name for f in dataclasses.fields(Call))


@dataclass
class Outcome:
    """What the engine returns: a result or a typed error, plus the metadata transports echo."""

    result: dict[str, Any] | None = None
    error: KrabsError | None = None
    status: int = 200
    run_id: str | None = None
    action_id: str | None = None
    replayed: bool = False
    retry_after: float | None = None
    #: The tool_call event the publish step fans out (set for every call that reached a run).
    event: dict[str, Any] | None = None
    #: The audit record appended (or, in a dry-run, the one that would have been).
    audit: dict[str, Any] | None = None
    #: True once the handler ran: only then is an error remembered under an idempotency key.
    executed: bool = False

    @property
    def ok(self) -> bool:
        return self.error is None

    @classmethod
    def failure(cls, error: KrabsError) -> Outcome:
        """The outcome of ``error``; a ``retry_after`` in its details (an operation's own rate
        limit, e.g. span uploads) becomes the outcome's, so every transport says when to retry
        (HTTP's ``Retry-After``) whichever step raised it."""
        wait = error.details.get("retry_after")
        retry_after = float(wait) if isinstance(wait, int | float) and wait >= 0 else None
        return cls(error=error, status=error.status, retry_after=retry_after)
