"""Group commit for SQLite's single writer. Writes queue for one thread, which takes every write
waiting and runs them as one transaction, each call in its own SAVEPOINT, then commits once: the
per-commit cost (the WAL append, SQLAlchemy's bookkeeping) is paid once per batch instead of once per
write. Each caller gets its outcome only after the commit, so a 200 still means durable.

Every call in a batch runs exactly as it would alone, in arrival order: it sees the writes of the
calls before it, and its own failure (or dry-run) rolls back only its savepoint. If the batch as a
whole cannot commit (SQLite aborted the transaction: disk full, I/O error), nothing of it was
written, and its calls are run again one at a time, each in its own transaction.

A write waits for its turn at most ``wait`` seconds (``KRABS_WRITE_WAIT_SECONDS``): a long
transaction (a million-row import) can hold the writer for minutes. A write still queued then is
answered ``busy`` (503, ``Retry-After``) and never run; one the writer has already taken runs to the
end and is answered as usual, however long that takes. The writer takes each call (``_claim``) only
at its turn, the database already its own, so a call answered ``busy`` has certainly not happened."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import queue
import threading
from collections.abc import Callable

from krabs.contract.errors import KrabsError
from krabs.daemon import LazyDaemon
from krabs.engine.context import CallRequest, Outcome
from krabs.store.db import Store

log = logging.getLogger("krabs.engine")

#: Calls per transaction at most: bounds the latency a batch adds to its first caller.
MAX_BATCH = 128
#: A write answered ``busy`` is told to retry after this many seconds.
BUSY_RETRY_AFTER = 5.0

_QUEUED, _TAKEN, _ABANDONED = 0, 1, 2


class _Ticket:
    """One queued write. Its state moves once, under the writer's lock: from queued to taken (the
    writer runs it) or to abandoned (its caller was answered ``busy``, or went away)."""

    __slots__ = ("future", "loop", "request", "state")

    def __init__(
        self,
        request: CallRequest,
        loop: asyncio.AbstractEventLoop,
        future: asyncio.Future[Outcome],
    ) -> None:
        self.request, self.loop, self.future = request, loop, future
        self.state = _QUEUED


class GroupWriter:
    def __init__(
        self, store: Store, call: Callable[[CallRequest], Outcome], wait: float = 0.0
    ) -> None:
        """``wait``: seconds a write may wait for its turn before it is answered ``busy`` (0:
        no limit)."""
        self.store, self.call, self.wait = store, call, wait
        self._queue: queue.SimpleQueue[_Ticket] = queue.SimpleQueue()
        self._daemon = LazyDaemon(self._run, "krabs-writer")
        self._state_lock = threading.Lock()

    async def submit(self, request: CallRequest) -> Outcome:
        """Queue one write; resolves once its batch has committed (or as ``busy``, not run)."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Outcome] = loop.create_future()
        self._daemon.ensure()
        ticket = _Ticket(request, loop, future)
        self._queue.put(ticket)
        if self.wait <= 0:
            return await future
        # One timer per write (a ``wait_for`` would wrap the future in two more per write).
        timer = loop.call_later(self.wait, self._expire, ticket)
        try:
            return await future
        finally:
            timer.cancel()

    def _expire(self, ticket: _Ticket) -> None:
        """On the caller's loop, ``wait`` seconds after it queued: still queued, it is answered
        ``busy`` and will not be run; taken by the writer, it goes on."""
        if not self._settle(ticket, _ABANDONED) or ticket.future.done():
            return
        ticket.future.set_result(
            Outcome.failure(
                KrabsError(
                    "busy",
                    f"the database's writer has been held for over {self.wait:g} s by a long "
                    "write (an import); nothing was done. Retry later.",
                    details={"retry_after": BUSY_RETRY_AFTER},
                )
            )
        )

    def _settle(self, ticket: _Ticket, state: int) -> bool:
        """Move a queued ticket to ``state``; False if it had already left the queue."""
        with self._state_lock:
            if ticket.state != _QUEUED:
                return False
            ticket.state = state
            return True

    def _run(self) -> None:
        while True:
            batch = [self._queue.get()]
            while len(batch) < MAX_BATCH:
                try:
                    batch.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            self._commit(batch)

    def _claim(self, ticket: _Ticket) -> bool:
        """Take a ticket to run it now: not one whose caller was answered ``busy`` or went away
        (client disconnected) before its turn."""
        if ticket.future.cancelled():
            self._settle(ticket, _ABANDONED)
        return self._settle(ticket, _TAKEN)

    def _commit(self, batch: list[_Ticket]) -> None:
        claimed: list[_Ticket] = []
        outcomes: list[Outcome] = []
        try:
            with self.store.batch() as intact:
                for ticket in batch:  # each claimed only at its turn: the database is ours now
                    if not self._claim(ticket):
                        continue
                    claimed.append(ticket)
                    if not intact():
                        raise RuntimeError("the batch's transaction was aborted")
                    outcomes.append(self.call(ticket.request))
        except Exception:
            log.warning("group commit of %d call(s) failed; running them one by one", len(batch))
            rest = [t for t in batch if t not in claimed and self._claim(t)]
            claimed += rest
            outcomes = [self.call(ticket.request) for ticket in claimed]
        if claimed:
            self._deliver(claimed, outcomes)

    @staticmethod
    def _deliver(items: list[_Ticket], outcomes: list[Outcome]) -> None:
        by_loop: dict[asyncio.AbstractEventLoop, list[tuple[asyncio.Future[Outcome], Outcome]]] = {}
        for ticket, outcome in zip(items, outcomes, strict=True):
            by_loop.setdefault(ticket.loop, []).append((ticket.future, outcome))
        for loop, pairs in by_loop.items():
            # RuntimeError: that event loop has closed, so nobody is waiting.
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(_resolve, pairs)


def _resolve(pairs: list[tuple[asyncio.Future[Outcome], Outcome]]) -> None:
    for future, outcome in pairs:
        if not future.done():
            future.set_result(outcome)
