"""Batch runs: a list of calls executed, in order, as one new run (``POST /v1/run``, queued jobs).

Every call goes through the engine like any other (auth, scopes, approval gates, idempotency, audit,
its ``tool_call`` event); this module only opens the run, feeds it the calls and closes it."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from pydantic import Field

from krabs.contract.errors import KrabsError
from krabs.contract.models import Args, Name
from krabs.contract.registry import REGISTRY
from krabs.engine import CallRequest, Engine, Outcome, Principal

MAX_CALLS = 1000


class BatchCall(Args):
    op: str = Field(min_length=1, max_length=80, description="The operation, e.g. contact.upsert.")
    args: dict[str, Any] = Field(default_factory=dict, description="Its arguments.")
    idempotency_key: str | None = Field(
        None, min_length=1, max_length=255, description="The call's own Idempotency-Key."
    )


class BatchBody(Args):
    calls: list[BatchCall] = Field(min_length=1, max_length=MAX_CALLS)
    name: Name = Field("batch", description="The new run's name.")
    stream: bool = Field(True, description="Stream the run's events as SSE (default).")
    queue: bool = Field(False, description="Queue the calls as a job; answer 202 at once.")
    stop_on_error: bool = Field(False, description="Stop at the first failing call.")


def check_ops(calls: list[BatchCall]) -> None:
    """Every call names an operation (other mistakes are the call's own error when it runs)."""
    for i, c in enumerate(calls):
        if REGISTRY.get(c.op) is None:
            raise KrabsError(
                "invalid_argument",
                f"calls[{i}].op: no operation named {c.op[:80]!r}; GET /v1/schema lists them",
                param=f"calls[{i}].op",
            )


@dataclass
class Batch:
    """One batch: run it with ``start`` then ``calls``, then ``finish``."""

    engine: Engine
    principal: Principal
    name: str
    transport: str = "http"
    run_id: str | None = None

    def start(self, run_id: str | None = None) -> str:
        """Open the run (``run_id`` if the job already named it)."""
        if run_id is not None:
            self.engine.runs.ensure(self.principal, run_id, self.name)
            self.run_id = run_id
            return run_id
        out = self._call("run.create", {"name": self.name}, None)
        if out.error is not None:
            raise out.error
        assert out.result is not None
        self.run_id = str(out.result["id"])
        return self.run_id

    def _call(
        self, op: str, args: dict[str, Any], key: str | None, run: str | None = None
    ) -> Outcome:
        return self.engine.call(
            CallRequest(
                op=op,
                args=args,
                principal=self.principal,
                idempotency_key=key,
                run_id=run,
                transport=self.transport,
            )
        )

    def one(self, call: BatchCall, key: str | None = None) -> dict[str, Any]:
        """Execute one call in the run: ``{op, ok, status, result | error, action_id}``."""
        out = self._call(call.op, call.args, call.idempotency_key or key, self.run_id)
        item: dict[str, Any] = {"op": call.op, "ok": out.ok, "status": out.status}
        if out.error is not None:
            item["error"] = out.error.to_dict(op=call.op)
        else:
            item["result"] = out.result
        if out.action_id:
            item["action_id"] = out.action_id
        if out.replayed:
            item["replayed"] = True
        return item

    def calls(
        self, calls: list[BatchCall], stop_on_error: bool, key_prefix: str | None = None
    ) -> Iterator[dict[str, Any]]:
        for i, c in enumerate(calls):
            item = self.one(c, f"{key_prefix}:{i}" if key_prefix else None)
            yield item
            if stop_on_error and not item["ok"]:
                return

    def finish(self, results: list[dict[str, Any]]) -> str:
        """Close the run: completed, or failed when a call failed; the status."""
        failed = any(not r["ok"] for r in results)
        outcome = "failed" if failed else "completed"
        reason = (
            f"{sum(not r['ok'] for r in results)} of {len(results)} calls failed"
            if failed
            else None
        )
        args: dict[str, Any] = {"id": self.run_id, "outcome": outcome}
        if reason:
            args["reason"] = reason
        self._call("run.close", args, None)
        return outcome


def summary(results: list[dict[str, Any]]) -> dict[str, int]:
    ok = sum(1 for r in results if r["ok"])
    return {"calls": len(results), "ok": ok, "failed": len(results) - ok}
