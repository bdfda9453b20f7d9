"""The live fan-out of run events to this node's subscribers (SSE streams, tails).

Writers publish events once committed (``publish``, from any thread; it never blocks). Each subscriber
owns a bounded ``asyncio.Queue`` on its event loop; one that falls ``maxsize`` events behind is cut
off (its queue is replaced by an overflow marker) and its client resumes from the last id it got.

On PostgreSQL, ``append_event`` notifies ``(node, run_id, seq, id)`` on the schema's channel inside
the write transaction, so the notification is delivered on commit. One listener thread per node
(per SQLAlchemy engine) ``LISTEN``s, skips its own node's notifications (already published locally)
and reads the others' event rows from the table before publishing them here."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import uuid
import weakref
from collections.abc import Iterable, Sequence
from typing import Any

import sqlalchemy as sa

from krabs.runs.events import CHANNEL_PREFIX, RunEvent, read_events_by_id, take_pending

log = logging.getLogger("krabs.runs.hub")

#: Marks a subscription cut off for falling behind.
OVERFLOW: Any = object()


class Subscription:
    """One live reader: events of one run, or (``run_id`` None) every run of an account."""

    def __init__(self, hub: Hub, account_id: str, run_id: str | None, maxsize: int) -> None:
        self.hub, self.account_id, self.run_id = hub, account_id, run_id
        self.loop = asyncio.get_running_loop()
        self.queue: asyncio.Queue[Any] = asyncio.Queue(maxsize=maxsize)
        self.overflowed = False

    def _offer(self, events: Sequence[RunEvent]) -> None:
        """On the subscriber's loop: enqueue, or cut off when full."""
        if self.overflowed:
            return
        for event in events:
            try:
                self.queue.put_nowait(event)
            except asyncio.QueueFull:
                # Cut off: no more events for it (writers never wait on a reader), and its stream
                # ends at the marker so its client resumes from the last id it got.
                self.overflowed = True
                self.hub._remove(self)
                while not self.queue.empty():
                    self.queue.get_nowait()
                self.queue.put_nowait(OVERFLOW)
                return

    async def get(self) -> RunEvent | None:
        """The next event, or None once cut off."""
        item = await self.queue.get()
        return None if item is OVERFLOW else item

    def drain(self) -> list[RunEvent | None]:
        """Every event already waiting (None for the cut-off marker), without waiting."""
        out: list[RunEvent | None] = []
        while not self.queue.empty():
            item = self.queue.get_nowait()
            out.append(None if item is OVERFLOW else item)
        return out

    def close(self) -> None:
        self.hub._remove(self)

    def __enter__(self) -> Subscription:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class Hub:
    def __init__(self, engine: sa.Engine) -> None:
        self.engine = engine
        self.node_id = uuid.uuid4().hex[:12]
        self._by_run: dict[str, set[Subscription]] = {}
        self._by_account: dict[str, set[Subscription]] = {}
        self._lock = threading.Lock()
        self._listener: _Listener | None = None

    # -- subscribing (on an event loop) -----------------------------------------------------------
    def subscribe(
        self, account_id: str, run_id: str | None = None, *, maxsize: int = 1024
    ) -> Subscription:
        sub = Subscription(self, account_id, run_id, maxsize)
        with self._lock:
            index, key = (self._by_run, run_id) if run_id else (self._by_account, account_id)
            index.setdefault(key, set()).add(sub)
        return sub

    def _remove(self, sub: Subscription) -> None:
        with self._lock:
            index, key = (
                (self._by_run, sub.run_id)
                if sub.run_id
                else (
                    self._by_account,
                    sub.account_id,
                )
            )
            subs = index.get(key)
            if subs is not None:
                subs.discard(sub)
                if not subs:
                    del index[key]

    @property
    def subscribers(self) -> int:
        with self._lock:
            return sum(len(s) for s in self._by_run.values()) + sum(
                len(s) for s in self._by_account.values()
            )

    async def ensure_listening(self) -> None:
        """On PostgreSQL, start this node's listener (once) and wait until it listens."""
        if self.engine.dialect.name != "postgresql":
            return
        with self._lock:
            if self._listener is None:
                self._listener = _Listener(self)
                self._listener.start()
            listener = self._listener
        await asyncio.get_running_loop().run_in_executor(None, listener.ready.wait, 10)

    # -- publishing (any thread) ------------------------------------------------------------------
    def publish(self, events: Iterable[RunEvent]) -> None:
        """Hand committed events to their subscribers. Never blocks the caller."""
        events = list(events)
        if not events:
            return
        per_loop: dict[asyncio.AbstractEventLoop, list[tuple[Subscription, list[RunEvent]]]] = {}
        with self._lock:
            if not self._by_run and not self._by_account:
                return
            targets: dict[Subscription, list[RunEvent]] = {}
            for event in events:
                for sub in self._by_run.get(event.run_id, ()):
                    targets.setdefault(sub, []).append(event)
                for sub in self._by_account.get(event.account_id, ()):
                    targets.setdefault(sub, []).append(event)
        for sub, mine in targets.items():
            per_loop.setdefault(sub.loop, []).append((sub, mine))
        for loop, batch in per_loop.items():
            with contextlib.suppress(RuntimeError):  # that loop has closed: nobody is listening
                loop.call_soon_threadsafe(_deliver, batch)

    def publish_pending(self, conn: sa.Connection) -> None:
        """After ``conn`` committed: publish what it appended."""
        self.publish(take_pending(conn))

    def close(self) -> None:
        with self._lock:
            listener, self._listener = self._listener, None
        if listener is not None:
            listener.stop()


def _deliver(batch: list[tuple[Subscription, list[RunEvent]]]) -> None:
    for sub, events in batch:
        sub._offer(events)


class _Listener(threading.Thread):
    """``LISTEN`` on the schema's channel with a psycopg connection of its own."""

    def __init__(self, hub: Hub) -> None:
        super().__init__(name="krabs-run-listener", daemon=True)
        self.hub = hub
        self.ready = threading.Event()
        self._stop = threading.Event()

    def stop(self) -> None:
        self._stop.set()

    def run(self) -> None:
        while not self._stop.is_set():
            try:
                self._listen()
            except Exception:
                log.exception("run event listener failed; reconnecting")
                self._stop.wait(1.0)

    def _listen(self) -> None:
        import psycopg

        url = self.hub.engine.url.set(drivername="postgresql")
        dsn = url.render_as_string(hide_password=False)
        with psycopg.connect(dsn, autocommit=True) as conn:
            schema = conn.execute("SELECT current_schema()").fetchone()
            channel = (CHANNEL_PREFIX + str(schema[0] if schema else "public"))[:63]
            conn.execute(f'LISTEN "{channel}"')
            self.ready.set()
            while not self._stop.is_set():
                ids: list[int] = []
                for note in conn.notifies(timeout=1.0, stop_after=256):
                    node, _, rest = note.payload.partition(":")
                    if node != self.hub.node_id:
                        ids.append(int(rest.rsplit(":", 1)[1]))
                if ids:
                    self._publish(ids)

    def _publish(self, ids: list[int]) -> None:
        with self.hub.engine.connect() as conn:
            events = read_events_by_id(conn, ids)
        self.hub.publish(events)


_hubs: weakref.WeakKeyDictionary[sa.Engine, Hub] = weakref.WeakKeyDictionary()
_hubs_lock = threading.Lock()


def hub_for(engine: sa.Engine) -> Hub:
    """This node's hub for one database (SQLAlchemy engine)."""
    hub = _hubs.get(engine)
    if hub is None:
        with _hubs_lock:
            hub = _hubs.get(engine)
            if hub is None:
                hub = _hubs[engine] = Hub(engine)
    return hub


def node_prefix(engine: sa.Engine, run_id: str, seq: int) -> str:
    """The notification payload up to the event id: ``node:run_id:seq:``."""
    return f"{hub_for(engine).node_id}:{run_id}:{seq}:"
