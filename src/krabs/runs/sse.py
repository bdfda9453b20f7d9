"""Server-Sent Events for runs: one run's stream (``id:`` is the event's seq) and the account's
firehose across runs (``id:`` is the global event id).

A stream subscribes to the hub *before* reading history, then drops live events it already sent:
no gap and no duplicate at the seam. A live event whose seq is ahead of the last one sent (events
published out of order by concurrent writers) makes the stream read the missing ones from the
table first, so a run's stream is always exactly ``after_seq+1, after_seq+2, …``. A stream whose
subscriber falls too far behind ends; its client reconnects with ``Last-Event-ID`` and resumes."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

from anyio import to_thread
from sqlalchemy.engine import Connection
from sqlalchemy.engine import Engine as SqlEngine

from krabs.config import Settings
from krabs.contract.errors import KrabsError
from krabs.runs.events import RunEvent, last_seq, read_events, read_firehose, settled_horizon
from krabs.runs.hub import Hub, hub_for
from krabs.runs.lifecycle import STATUS_AFTER, TERMINAL

#: The reconnection delay suggested to clients, ms.
RETRY_MS = 2000
HISTORY_PAGE = 500

HEADERS = {
    "Cache-Control": "no-cache, no-transform",
    "X-Accel-Buffering": "no",
    "Connection": "keep-alive",
}
TERMINAL_TYPES = frozenset(t for t, s in STATUS_AFTER.items() if s in TERMINAL)


def cursor(header: str | None, query: str | None, name: str) -> int:
    """The position to resume after: ``Last-Event-ID`` wins over the query parameter."""
    for value, param in ((header, "Last-Event-ID"), (query, name)):
        if value is None or value == "":
            continue
        value = value.strip()
        if not value.isdigit() or len(value) > 18:
            raise KrabsError(
                "invalid_argument",
                f"{param} must be a non-negative integer (an event's id: field), not {value[:40]!r}",
                param=param,
            )
        return int(value)
    return 0


@dataclass(frozen=True)
class StreamOptions:
    """Per-stream knobs (``KRABS_SSE_KEEPALIVE_SECONDS``, ``KRABS_SSE_QUEUE``)."""

    keepalive: float = 15.0
    queue_size: int = 2048

    @classmethod
    def of(cls, settings: Settings) -> StreamOptions:
        return cls(keepalive=settings.sse_keepalive_seconds, queue_size=settings.sse_queue)


def _opening() -> str:
    return f"retry: {RETRY_MS}\n\n: connected\n\n"


async def _read(db: SqlEngine, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    def work() -> Any:
        with db.connect() as conn:
            return fn(conn, *args, **kwargs)

    return await to_thread.run_sync(work)


async def run_stream(
    db: SqlEngine,
    account_id: str,
    run_id: str,
    after_seq: int,
    options: StreamOptions | None = None,
    *,
    pending: bool = False,
) -> AsyncIterator[str]:
    """One run's events after ``after_seq``: history, then live; ends after a finished run's last
    event. The caller has checked the run is the account's; ``pending``: its creation is spooled
    (``RunResolver.pending``), so it has no row yet and its events come once it is written."""
    options = options or StreamOptions()
    hub: Hub = hub_for(db)
    await hub.ensure_listening()
    with hub.subscribe(account_id, run_id, maxsize=options.queue_size) as sub:
        yield _opening()
        last = after_seq
        #: The run's (last seq, status), read with the last page of history.
        state: tuple[int, str] | None = None

        async def backlog(upto: int | None = None) -> AsyncIterator[str]:
            """Stored events after ``last`` (up to seq ``upto``), in order, a page per chunk."""
            nonlocal last, state
            while upto is None or last < upto:
                page, state = await _read(db, _history, account_id, run_id, last)
                frames = []
                for event in page:
                    if upto is not None and event.seq > upto:
                        break
                    last = event.seq
                    frames.append(event.frame("seq"))
                if frames:
                    yield "".join(frames)
                if len(page) < HISTORY_PAGE or len(frames) < len(page):
                    return

        async for chunk in backlog():
            yield chunk
        # Read after the history (in the same visit to the database): a run that ended after it
        # still has its last events coming from the hub, which this stream subscribed to first.
        if state is None and not pending:
            return
        if state is not None and state[1] in TERMINAL and last >= state[0]:
            return
        # Caught up: from here every event arrives as it happens (a tool that waits for a stream to
        # be live before it acts, such as bench/sse.py, waits for this comment).
        yield ": live\n\n"
        while True:
            try:
                # asyncio.timeout, not wait_for: no task per wait (a thousand streams wait at once).
                async with asyncio.timeout(options.keepalive):
                    first = await sub.get()
            except TimeoutError:
                yield ": keepalive\n\n"
                continue
            # Whatever else has arrived goes out in the same chunk: one send for a burst.
            frames: list[str] = []
            for event in [first, *sub.drain()]:
                if event is None:  # fell too far behind: the client resumes from its last id
                    if frames:
                        yield "".join(frames)
                    return
                if event.id == 0:  # live only, never stored (import.progress): no seq of its own
                    frames.append(event.frame("seq"))
                    continue
                if event.seq <= last:
                    continue
                if event.seq > last + 1:  # published out of order: fill the gap from the table
                    if frames:
                        yield "".join(frames)
                        frames = []
                    async for chunk in backlog(event.seq - 1):
                        yield chunk
                last = event.seq
                frames.append(event.frame("seq"))
                if event.type in TERMINAL_TYPES:
                    yield "".join(frames)
                    async for chunk in backlog():  # what committed with it (its own tool_call)
                        yield chunk
                    return
            if frames:
                yield "".join(frames)


def _history(
    conn: Connection, account_id: str, run_id: str, after: int
) -> tuple[list[RunEvent], tuple[int, str] | None]:
    """A page of the run's events after seq ``after``, then its last seq and status."""
    page = read_events(conn, account_id, run_id, after, HISTORY_PAGE)
    return page, last_seq(conn, account_id, run_id)


@dataclass(frozen=True)
class Filters:
    """The firehose's query filters (``status``: the run's status when the event is served)."""

    agent: str | None = None
    op: str | None = None
    status: str | None = None


async def firehose(
    db: SqlEngine,
    account_id: str,
    after_id: int | None,
    filters: Filters,
    options: StreamOptions | None = None,
) -> AsyncIterator[str]:
    """Every run's events of the account: those after global id ``after_id`` (if given, else from
    now), then live. Never ends by itself.

    Served from the table in id order, only up to the settled horizon (``settled_horizon``): on
    PostgreSQL a transaction holding a lower id may commit after a higher one, and a client that had
    been sent the higher id would, resuming after it, never get the lower. The hub's events only
    wake the stream; while some are above the horizon it looks again shortly."""
    options = options or StreamOptions()
    hub = hub_for(db)
    await hub.ensure_listening()
    with hub.subscribe(account_id, maxsize=options.queue_size) as sub:
        yield _opening()
        last = after_id if after_id is not None else await _read(db, settled_horizon, account_id)
        horizon = last

        async def catch_up() -> AsyncIterator[str]:
            """Settled events after ``last``, a page per chunk."""
            nonlocal last, horizon
            while True:
                page, horizon = await _read(db, _settled_page, account_id, last, filters)
                if page:
                    last = page[-1].id
                    yield "".join(event.frame("id") for event in page)
                if len(page) < HISTORY_PAGE:
                    last = max(last, horizon)  # nothing else settled up to there matches
                    return

        async for chunk in catch_up():
            yield chunk
        told = 0  # the highest id the hub announced
        delay = SETTLE_POLL_MIN
        while True:
            wait = delay if told > horizon else options.keepalive
            try:
                async with asyncio.timeout(wait):
                    first = await sub.get()
            except TimeoutError:
                if told <= horizon:
                    yield ": keepalive\n\n"
                    continue
                delay = min(delay * 2, SETTLE_POLL_MAX)  # still in flight below: look again
            else:
                for event in [first, *sub.drain()]:
                    if event is None:  # fell too far behind: the client resumes from its last id
                        return
                    told = max(told, event.id)
                delay = SETTLE_POLL_MIN
            async for chunk in catch_up():
                yield chunk


#: How soon a firehose looks again for events announced but not yet settled (seconds, doubling).
SETTLE_POLL_MIN, SETTLE_POLL_MAX = 0.005, 0.25


def _settled_page(
    conn: Connection, account_id: str, after: int, filters: Filters
) -> tuple[list[RunEvent], int]:
    """One page of the account's settled events after ``after``, and the horizon it was read to."""
    horizon = settled_horizon(conn, account_id)
    if horizon <= after:
        return [], horizon
    page = read_firehose(
        conn,
        account_id,
        after,
        HISTORY_PAGE,
        agent=filters.agent,
        op=filters.op,
        status=filters.status,
        upto=horizon,
    )
    return page, horizon
