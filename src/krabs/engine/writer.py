"""Group commit for SQLite's single writer. Writes queue for one thread, which takes every write
waiting and runs them as one transaction, each call in its own SAVEPOINT, then commits once: the
per-commit cost (the WAL append, SQLAlchemy's bookkeeping) is paid once per batch instead of once per
write. Each caller gets its outcome only after the commit, so a 200 still means durable.

Every call in a batch runs exactly as it would alone, in arrival order: it sees the writes of the
calls before it, and its own failure (or dry-run) rolls back only its savepoint. If the batch as a
whole cannot commit (SQLite aborted the transaction: disk full, I/O error), nothing of it was
written, and its calls are run again one at a time, each in its own transaction."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import queue
import threading
from collections.abc import Callable

from krabs.engine.context import CallRequest, Outcome
from krabs.store.db import Store

log = logging.getLogger("krabs.engine")

#: Calls per transaction at most: bounds the latency a batch adds to its first caller.
MAX_BATCH = 128

_Item = tuple[CallRequest, asyncio.AbstractEventLoop, "asyncio.Future[Outcome]"]


class GroupWriter:
    def __init__(self, store: Store, call: Callable[[CallRequest], Outcome]) -> None:
        self.store, self.call = store, call
        self._queue: queue.SimpleQueue[_Item] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._start_lock = threading.Lock()

    async def submit(self, request: CallRequest) -> Outcome:
        """Queue one write; resolves once its batch has committed."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Outcome] = loop.create_future()
        if self._thread is None:
            self._start()
        self._queue.put((request, loop, future))
        return await future

    def _start(self) -> None:
        with self._start_lock:
            if self._thread is None:
                thread = threading.Thread(target=self._run, name="krabs-writer", daemon=True)
                thread.start()
                self._thread = thread

    def _run(self) -> None:
        while True:
            batch = [self._queue.get()]
            while len(batch) < MAX_BATCH:
                try:
                    batch.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            # A caller that went away before its turn (client disconnected) is not run.
            live = [item for item in batch if not item[2].cancelled()]
            if live:
                self._deliver(live, self._commit([item[0] for item in live]))

    def _commit(self, requests: list[CallRequest]) -> list[Outcome]:
        try:
            with self.store.batch() as intact:
                outcomes = []
                for request in requests:
                    if not intact():
                        raise RuntimeError("the batch's transaction was aborted")
                    outcomes.append(self.call(request))
            return outcomes
        except Exception:
            log.warning("group commit of %d call(s) failed; running them one by one", len(requests))
            return [self.call(request) for request in requests]

    @staticmethod
    def _deliver(items: list[_Item], outcomes: list[Outcome]) -> None:
        by_loop: dict[asyncio.AbstractEventLoop, list[tuple[asyncio.Future[Outcome], Outcome]]] = {}
        for (_, loop, future), outcome in zip(items, outcomes, strict=True):
            by_loop.setdefault(loop, []).append((future, outcome))
        for loop, pairs in by_loop.items():
            # RuntimeError: that event loop has closed, so nobody is waiting.
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(_resolve, pairs)


def _resolve(pairs: list[tuple[asyncio.Future[Outcome], Outcome]]) -> None:
    for future, outcome in pairs:
        if not future.done():
            future.set_result(outcome)
