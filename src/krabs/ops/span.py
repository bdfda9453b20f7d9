"""Spans: what an agent host did between its tool calls (model calls, chains, retrievals), uploaded in
batches as ``span`` events of a run. Their tokens and cost add up in the run's stats."""

from __future__ import annotations

import json
from typing import Annotated, Any

import sqlalchemy as sa
from pydantic import Field

from krabs.config import env_settings
from krabs.contract.errors import KrabsError
from krabs.contract.ids import new_id
from krabs.contract.models import Args, ListArgs, ListOf, Name, Out, Text, page
from krabs.contract.registry import Example, operation
from krabs.engine.uow import UnitOfWork
from krabs.ops.run import RUN_ID, check_takes_events, run_row
from krabs.ratelimit import RateLimiter
from krabs.runs.events import append_event
from krabs.store.tables import run_events

#: Span uploads per key, in this process: made on first use from ``KRABS_SPANS_PER_MINUTE``.
_limiter: RateLimiter | None = None


def limiter() -> RateLimiter:
    global _limiter
    if _limiter is None:
        per_minute = env_settings().spans_per_minute
        made = RateLimiter(per_minute / 60)
        made.capacity = max(1.0, per_minute)  # a minute's worth may come at once
        _limiter = made
    return _limiter


Kind = Annotated[str, Field(pattern=r"^[A-Za-z][A-Za-z0-9_.-]{0,39}$")]


class SpanIn(Args):
    node_name: Name = Field(description="The step of the agent that ran, e.g. 'generate_strategy'.")
    span_kind: Kind = Field(
        "LLM", description="LLM, TOOL, CHAIN, RETRIEVER, AGENT, … (default LLM)."
    )
    input_text: Text | None = None
    output_text: Text | None = None
    model: str | None = Field(None, min_length=1, max_length=200)
    latency_ms: float | None = Field(None, ge=0, le=86_400_000)
    input_tokens: int | None = Field(None, ge=0, le=1_000_000_000)
    output_tokens: int | None = Field(None, ge=0, le=1_000_000_000)
    cost_usd: float | None = Field(None, ge=0, le=1_000_000, description="What the step cost, USD.")


class SpanAdd(Args):
    run_id: str = RUN_ID
    spans: list[SpanIn] = Field(min_length=1, max_length=100, description="1-100 spans.")


class SpansAdded(Out):
    run_id: str
    uploaded: int
    span_ids: list[str]


@operation(
    "run.add_spans",
    summary="Upload a batch of trace spans (model calls, steps) to an open run.",
    input=SpanAdd,
    output=SpansAdded,
    mutates=True,
    added_in="1.1",
    errors=("not_found", "run_closed", "run_cancelled", "rate_limited"),
    examples=(
        Example(
            {
                "run_id": "run_01HG7Z4X9Q8M2N7P3R5T6V8W",
                "spans": [
                    {
                        "node_name": "process_request",
                        "span_kind": "LLM",
                        "model": "claude-sonnet-4-5",
                        "latency_ms": 1500,
                        "input_tokens": 1200,
                        "output_tokens": 300,
                        "cost_usd": 0.0081,
                    }
                ],
            }
        ),
    ),
)
def add(uow: UnitOfWork, args: SpanAdd) -> dict[str, Any]:
    """Appends one `span` event per span, in order, to the run (which must be open or waiting for
    input, else `run_closed` / `run_cancelled`); each gets a span id `sp_…`. Tokens and cost add to
    the run's stats. Limited to 60 uploads per key per minute (`rate_limited`: wait
    `retry_after` seconds); send up to 100 spans per upload."""
    check_takes_events(run_row(uow, args.run_id, "run_id"), uow.now, "run_id")
    limit = limiter()
    wait = limit.acquire(uow.principal.key_id or uow.account_id)
    if wait is not None:
        raise KrabsError(
            "rate_limited",
            f"span uploads are limited to {limit.rate * 60:g} per minute per key; retry in "
            f"{wait:.1f}s (batch up to 100 spans per upload)",
            details={"retry_after": round(wait, 3)},
        )
    ids = []
    for span in args.spans:
        span_id = new_id("span")
        data = {"span_id": span_id, **span.model_dump(mode="json")}
        append_event(
            uow.conn,
            account_id=uow.account_id,
            run_id=args.run_id,
            type="span",
            data=data,
            op=None,
            ts=uow.now,
        )
        ids.append(span_id)
    return {"run_id": args.run_id, "uploaded": len(ids), "span_ids": ids}


class SpanOut(Out):
    object: str = "span"
    id: str
    seq: int
    ts: str
    node_name: str
    span_kind: str
    input_text: str | None
    output_text: str | None
    model: str | None
    latency_ms: float | None
    input_tokens: int | None
    output_tokens: int | None
    cost_usd: float | None


class SpanList(ListArgs):
    run_id: str = RUN_ID


@operation(
    "run.list_spans",
    summary="A run's spans in the order they were uploaded.",
    input=SpanList,
    output=ListOf[SpanOut],
    mutates=False,
    added_in="1.1",
    errors=("not_found",),
    examples=(Example({"run_id": "run_01HG7Z4X9Q8M2N7P3R5T6V8W"}),),
)
def list_(uow: UnitOfWork, args: SpanList) -> dict[str, Any]:
    """Oldest first; `total` counts all of the run's spans. The cursor (`next_cursor`) is opaque:
    pass it back as `starting_after`."""
    run_row(uow, args.run_id, "run_id")
    after = 0
    if args.starting_after is not None:
        if not args.starting_after.isdigit() or len(args.starting_after) > 18:
            raise KrabsError(
                "invalid_argument",
                "starting_after must be the next_cursor of a previous page of this list",
                param="starting_after",
            )
        after = int(args.starting_after)
    e = run_events
    where = (e.c.account_id == uow.account_id, e.c.run_id == args.run_id, e.c.type == "span")
    rows = uow.execute(
        sa.select(e.c.seq, e.c.ts, e.c.data)
        .where(*where, e.c.seq > after)
        .order_by(e.c.seq)
        .limit(args.limit + 1)
    ).all()
    total = uow.execute(sa.select(sa.func.count()).select_from(e).where(*where)).scalar_one()
    spans = []
    for r in rows:
        data = json.loads(r.data)
        spans.append(
            {"object": "span", "id": data.pop("span_id"), "seq": int(r.seq), "ts": r.ts, **data}
        )
    out = page(spans, args.limit)
    out["next_cursor"] = str(spans[args.limit - 1]["seq"]) if out["has_more"] else None
    out["total"] = int(total)
    return out
