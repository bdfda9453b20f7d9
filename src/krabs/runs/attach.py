"""Which run a call belongs to: the one it names (if it takes calls) or its agent's daily ``default``
run, created on first use. Default-run ids are cached: once created they never change.

Creating a run is a write. When a long transaction (an import) holds SQLite's writer, the first call
of the day (or of an MCP session) does not wait for it: the run's id stands at once and its creation
is spooled ahead of the call's event (``krabs.runs.spool``), so a read answers meanwhile; until it is
written, reads of the run (``run.get``, its stream) see it as open and empty (``pending``)."""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from krabs.contract.errors import KrabsError
from krabs.contract.ids import new_id
from krabs.engine.context import Principal
from krabs.engine.uow import utcnow
from krabs.runs.lifecycle import expire_run, idle_seconds, is_idle
from krabs.runs.spool import EventSpool, SpooledRun
from krabs.store.db import Store, WriterBusy
from krabs.store.tables import runs

OPEN_STATUSES = ("open", "waiting_for_input")


@dataclass(frozen=True)
class PendingRun:
    """A run whose creation is spooled: what its row will say."""

    account_id: str
    agent_id: str
    name: str
    default_day: str | None
    created_at: str

    def row(self, run_id: str) -> dict[str, Any]:
        """The ``runs`` row it will be, open and without events yet."""
        counters = ("last_seq", "calls", "errors", "writes", "input_tokens", "output_tokens")
        return {
            "id": run_id,
            "account_id": self.account_id,
            "agent_id": self.agent_id,
            "name": self.name,
            "status": "open",
            "default_day": self.default_day,
            "created_at": self.created_at,
            "updated_at": self.created_at,
            "closed_at": None,
            "last_call_at": None,
            "cost_micros": 0,
            **dict.fromkeys(counters, 0),
        }


class RunResolver:
    def __init__(self, store: Store, spool: EventSpool | None = None) -> None:
        """``spool``: where a run's creation waits while a long transaction holds SQLite's writer;
        without one, the run's first call waits for the writer."""
        self.store, self.spool = store, spool
        self._defaults: dict[tuple[str, str, str], str] = {}
        #: Runs whose creation is spooled, by id. A call naming one (a default run's id came back
        #: in ``X-Krabs-Run``) is attached to it before it is written.
        self._spooled: dict[str, PendingRun] = {}

    def resolve(
        self, principal: Principal, run_id: str | None, *, create: bool = True
    ) -> str | None:
        if run_id:
            return self._named(principal, run_id)
        return self._default(principal, create)

    def ensure(self, principal: Principal, run_id: str, name: str) -> None:
        """Create the open run ``run_id`` for ``principal`` if no run has that id: an MCP session's
        (or a stdio process's) run comes into being with its first call. An existing run is left
        as it is; ``resolve`` then decides whether it takes calls."""
        with self.store.connect(write=False) as conn:
            if conn.execute(sa.select(runs.c.id).where(runs.c.id == run_id)).first():
                return

        def make(conn: sa.Connection) -> None:
            # A concurrent first call of the same session may have created it: then theirs stands.
            with contextlib.suppress(sa.exc.IntegrityError), conn.begin_nested():
                insert_run(
                    conn,
                    account_id=principal.account_id,
                    agent_id=principal.agent_id,
                    name=name,
                    run_id=run_id,
                )

        try:
            with self._write() as conn:
                make(conn)
        except WriterBusy:  # a long transaction holds SQLite's writer: made once it is free
            self._spool(principal, run_id, make, name)

    def pending(self, account_id: str, run_id: str) -> dict[str, Any] | None:
        """The account's run ``run_id`` as it will be written, while its creation is spooled."""
        found = self._spooled.get(run_id)
        return found.row(run_id) if found is not None and found.account_id == account_id else None

    def _named(self, principal: Principal, run_id: str) -> str:
        if self.pending(principal.account_id, run_id) is not None:
            return run_id
        with self.store.connect(write=False) as conn:
            row = conn.execute(
                sa.select(runs.c.status, runs.c.last_call_at, runs.c.created_at).where(
                    runs.c.id == run_id, runs.c.account_id == principal.account_id
                )
            ).first()
        if row is None:
            raise KrabsError(
                "not_found", f"no run with id {run_id[:80]!r} in this account", param="X-Krabs-Run"
            )
        if is_idle(dict(row._mapping)):  # expires lazily, when a call names it
            expire_run(self.store, principal.account_id, run_id)
            raise KrabsError(
                "run_closed",
                f"run {run_id} expired after {idle_seconds() // 3600} h without a call; start a new "
                "run or omit the run id",
                param="X-Krabs-Run",
            )
        if row.status == "cancelled":
            raise KrabsError("run_cancelled", f"run {run_id} was cancelled", param="X-Krabs-Run")
        if row.status not in OPEN_STATUSES:
            raise KrabsError(
                "run_closed",
                f"run {run_id} is {row.status}; start a new run or omit the run id",
                param="X-Krabs-Run",
            )
        return run_id

    def _default(self, principal: Principal, create: bool) -> str | None:
        now = utcnow()
        key = (principal.account_id, principal.agent_id, now[:10])
        cached = self._defaults.get(key)
        if cached:
            return cached
        if not create:
            with self.store.connect(write=False) as conn:
                return _find_default(conn, principal, key[2])
        # Found without the writer when it exists (a process that has not cached it yet, say just
        # started while an import holds SQLite's writer): only creating it needs a write. No lock
        # around this: in a group commit the writer holds the database, and a reader waiting for it
        # under a lock the writer also wants would deadlock. The unique default_day index settles
        # races. The id is cached once committed, so a failed batch leaves no trace.
        with self.store.connect(write=False) as conn:
            run_id = _find_default(conn, principal, key[2])
        if run_id is None:
            try:
                run_id = self._create_default(principal, now)
            except WriterBusy:
                return self._spool_default(principal, key)
        self.store.after_commit(functools.partial(self._defaults.__setitem__, key, run_id))
        return run_id

    def _create_default(self, principal: Principal, now: str) -> str:
        """Raises ``WriterBusy`` (before writing anything) when a long transaction holds SQLite's
        writer and a spool can take the run instead."""
        for _attempt in range(3):
            with self._write() as conn:
                found = _find_default(conn, principal, now[:10])
                if found:
                    return found
                try:
                    return _insert_default(conn, principal, now[:10])
                except sa.exc.IntegrityError:
                    continue  # another node created it first; read theirs
        raise KrabsError("internal", "could not create the default run")

    def _write(self) -> contextlib.AbstractContextManager[sa.Connection]:
        if self.spool is None:
            return self.store.transaction(write=True)
        return self.store.transaction_unless_busy()

    def _spool_default(self, principal: Principal, key: tuple[str, str, str]) -> str:
        """The day's default run, its creation spooled: the id stands from now on."""
        run_id = new_id("run")

        def make(conn: sa.Connection) -> None:
            self._defaults[key] = _insert_spooled_default(conn, principal, key[2], run_id)

        self._defaults[key] = run_id
        # Not written after all: the next call resolves the day's run afresh.
        forget = functools.partial(self._defaults.pop, key, None)
        self._spool(principal, run_id, make, "default", key[2], forget)
        return run_id

    def _spool(
        self,
        principal: Principal,
        run_id: str,
        make: Callable[[sa.Connection], None],
        name: str,
        default_day: str | None = None,
        forget: Callable[[], object] | None = None,
    ) -> None:
        """Hand the run's creation (``make``) to the spool, which writes it before any later write
        and before the events naming it; calls naming ``run_id`` are attached to it until it is
        committed. ``forget`` runs if it never is."""
        assert self.spool is not None

        def settled(written: bool) -> None:
            self._spooled.pop(run_id, None)
            if not written and forget is not None:
                forget()

        self._spooled[run_id] = PendingRun(
            principal.account_id, principal.agent_id, name, default_day, utcnow()
        )
        self.spool.put(SpooledRun(principal.account_id, run_id, make, settled))


def _insert_spooled_default(
    conn: sa.Connection, principal: Principal, day: str, run_id: str
) -> str:
    """Make the spooled default run ``run_id``; the id of the day's default run. Another process
    may have made the day's run meanwhile: then ``run_id`` is still made, as a plain run, because
    calls were already answered with it and their events go there; later calls go to the other."""
    try:
        return _insert_default(conn, principal, day, run_id)
    except sa.exc.IntegrityError:
        _insert_default(conn, principal, None, run_id)
        return _find_default(conn, principal, day) or run_id


def _insert_default(
    conn: sa.Connection, principal: Principal, day: str | None, run_id: str | None = None
) -> str:
    """A run named ``default``: the day's (``day``) or a plain one (None). In a savepoint, so a
    clash with the day's existing run leaves the transaction usable."""
    with conn.begin_nested():
        return insert_run(
            conn,
            account_id=principal.account_id,
            agent_id=principal.agent_id,
            name="default",
            default_day=day,
            run_id=run_id,
        )


def _find_default(conn: sa.Connection, principal: Principal, day: str) -> str | None:
    found = conn.execute(
        sa.select(runs.c.id).where(
            runs.c.account_id == principal.account_id,
            runs.c.agent_id == principal.agent_id,
            runs.c.default_day == day,
        )
    ).scalar()
    return str(found) if found else None


def insert_run(
    conn: sa.Connection,
    *,
    account_id: str,
    agent_id: str,
    name: str,
    status: str = "open",
    default_day: str | None = None,
    run_id: str | None = None,
) -> str:
    """A new run row (with ``run_id`` if given, else a fresh id); its id."""
    run_id, now = run_id or new_id("run"), utcnow()
    conn.execute(
        runs.insert().values(
            id=run_id,
            account_id=account_id,
            agent_id=agent_id,
            name=name,
            status=status,
            default_day=default_day,
            created_at=now,
            updated_at=now,
        )
    )
    return run_id
