"""Reads do not wait for a long write: while a transaction (an import) holds SQLite's single writer,
a call that writes nothing answers at once and its run event is spooled, then written in order once
the writer is free. On PostgreSQL there is no single writer and nothing is spooled."""

from __future__ import annotations

import dataclasses
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
import sqlalchemy as sa
from tests.conftest import ok
from tests.test_runs import new_run, tool_calls

from krabs.auth import authenticate
from krabs.contract.ids import new_id
from krabs.engine import Engine
from krabs.engine.uow import utcnow
from krabs.runs.attach import RunResolver
from krabs.runs.record import RecordEvent
from krabs.runs.spool import EventSpool, SpooledEvent
from krabs.store.db import WriterBusy
from krabs.store.tables import api_keys, runs


def recorder(engine: Engine) -> RecordEvent:
    return next(s for s in engine.steps if isinstance(s, RecordEvent))


class HeldWriter:
    """Another thread holding a write transaction, like an import, until ``release``."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._held = threading.Event()
        self._release = threading.Event()
        self._thread = threading.Thread(target=self._hold, daemon=True)

    def _hold(self) -> None:
        with self.engine.store.transaction(write=True) as conn:
            conn.execute(sa.select(1))
            self._held.set()
            self._release.wait(30)

    def __enter__(self) -> HeldWriter:
        self._thread.start()
        assert self._held.wait(10)
        time.sleep(0.3)  # held longer than ``long_hold``: a long transaction by now
        return self

    def __exit__(self, *_exc: object) -> None:
        self._release.set()
        self._thread.join(10)


@pytest.fixture
def held(engine: Engine) -> Iterator[type[HeldWriter]]:
    yield HeldWriter
    assert recorder(engine).spool.drain(10)


def test_reads_answer_while_a_long_write_holds_the_writer(call, engine, account, held):
    run = new_run(call)
    created = ok(call("contact.create", {"display_name": "Ada"}, run=run))
    with held(engine):
        started = time.monotonic()
        got = ok(call("contact.get", {"id": created["id"]}, run=run))
        listed = ok(call("contact.list", {"limit": 5}, run=run))
        waited = time.monotonic() - started
        before_release = [e["op"] for e in tool_calls(engine, account, run)]
    assert got["display_name"] == "Ada" and listed["data"][0]["id"] == created["id"]
    if engine.store.is_sqlite:
        # Spooled: not yet in the run while the writer was held (a wait would have lasted 30 s).
        assert waited < 10
        assert before_release == ["contact.create"]
    assert recorder(engine).spool.drain(10)
    calls = tool_calls(engine, account, run)
    assert [e["op"] for e in calls] == ["contact.create", "contact.get", "contact.list"]
    assert [e["seq"] for e in calls] == sorted(e["seq"] for e in calls)
    assert calls[1]["result"]["id"] == created["id"]
    assert ok(call("run.get", {"id": run}))["stats"]["calls"] == 3


def test_a_failed_read_is_spooled_with_its_error(call, engine, account, held):
    run = new_run(call)
    with held(engine):
        outcome = call("contact.get", {"id": "ct_01HG7Z4X9Q8M2N7P3R5T6V8W"}, run=run)
        assert outcome.error is not None and outcome.error.code == "not_found"
    assert recorder(engine).spool.drain(10)
    last = tool_calls(engine, account, run)[-1]
    assert last["op"] == "contact.get" and last["error"]["code"] == "not_found"


def test_transaction_unless_busy_waits_for_a_short_write(engine):
    """A writer held briefly (a group commit) is waited for; one held long is not."""
    store = engine.store
    release = threading.Event()
    held = threading.Event()

    def short() -> None:
        with store.transaction(write=True):
            held.set()
            release.wait(5)

    thread = threading.Thread(target=short)
    thread.start()
    assert held.wait(5)
    threading.Timer(0.05, release.set).start()
    with store.transaction_unless_busy(patience=5, long_hold=1) as conn:
        assert conn.execute(sa.select(1)).scalar() == 1
    thread.join(5)


def test_transaction_unless_busy_refuses_a_long_held_writer(engine, held):
    store = engine.store
    with held(engine):
        if not store.is_sqlite:  # no single writer: a plain transaction
            with store.transaction_unless_busy() as conn:
                assert conn.execute(sa.select(1)).scalar() == 1
            return
        started = time.monotonic()
        with pytest.raises(WriterBusy), store.transaction_unless_busy(patience=5):
            pytest.fail("entered a transaction while another held the writer")
        assert time.monotonic() - started < 1  # held past long_hold: no waiting at all


def test_a_busy_writer_does_not_block_noting_a_keys_use(call, engine, account, held):
    """The key's last use is noted once a minute; with the writer held it is noted later."""
    rec = recorder(engine)
    rec._touched.clear()
    with held(engine):
        started = time.monotonic()
        ok(call("contact.list", {}))
        assert time.monotonic() - started < 10
    assert rec.spool.drain(10)
    ok(call("contact.list", {}))
    with engine.store.connect(write=False) as conn:
        used = conn.execute(
            sa.select(api_keys.c.last_used_at).where(api_keys.c.account_id == account.account_id)
        ).scalar()
    assert used is not None


def test_a_spooled_event_that_cannot_be_kept_does_not_lose_the_others(call, engine, account):
    run = new_run(call)
    published: list[Any] = []
    spool = EventSpool(engine.store, published.extend)
    ts = "2026-12-06T00:00:00.000000Z"
    for run_id, op in ((run, "contact.list"), ("run_01HG7Z4X9Q8M2N7P3R5T6V8W", "tag.list")):
        spool.put(SpooledEvent(account.account_id, run_id, op, None, {"op": op, "args": {}}, ts))
    spool.put(SpooledEvent(account.account_id, run, "note.list", None, {"op": "note.list"}, ts))
    assert spool.drain(10)
    assert [e["op"] for e in tool_calls(engine, account, run)][-2:] == ["contact.list", "note.list"]
    assert [e.op for e in published] == ["contact.list", "note.list"]


def test_the_next_write_records_spooled_events_first(call, engine, account, held):
    """A write that takes the writer before the spool's thread writes the spooled events first: a
    read spooled before a write is ahead of it in the run (and so an erasure cannot pass it)."""
    run = new_run(call)
    rec = recorder(engine)
    with held(engine):
        ok(call("contact.list", {"limit": 1}, run=run))
        # The spool's thread is parked while the writer is held; hold it back after release too.
        rec.spool._wake.clear()
    created = ok(call("contact.create", {"display_name": "After"}, run=run))
    assert rec.spool.drain(10)
    ops = [e["op"] for e in tool_calls(engine, account, run)]
    assert ops == ["contact.list", "contact.create"], ops
    assert created["display_name"] == "After"


def test_a_process_that_has_not_cached_the_days_run_finds_it_without_the_writer(
    call, engine, account, held
):
    """Just started while an import holds the writer: the day's default run exists, so a read
    finds it with a read and answers at once (only creating a run needs the writer)."""
    ok(call("contact.list", {}))  # the day's default run exists
    engine.runs._defaults.clear()  # as in a process that has just started
    with held(engine):
        started = time.monotonic()
        ok(call("contact.list", {}))
        assert time.monotonic() - started < 10


def default_runs(engine: Engine, account_id: str) -> list[tuple[str, str | None]]:
    """The account's runs named ``default``: (id, default_day), oldest first."""
    with engine.store.connect(write=False) as conn:
        rows = conn.execute(
            sa.select(runs.c.id, runs.c.default_day)
            .where(runs.c.account_id == account_id, runs.c.name == "default")
            .order_by(runs.c.id)
        ).all()
    return [(r.id, r.default_day) for r in rows]


def test_the_first_call_of_the_day_answers_while_the_writer_is_held(call, engine, account, held):
    """The account has no default run yet: creating it is a write, so with a long transaction
    holding SQLite's writer its creation is spooled and the read answers at once."""
    assert default_runs(engine, account.account_id) == []
    with held(engine):
        started = time.monotonic()
        first = call("contact.list", {})
        again = call("contact.list", {})
        # The id came back in X-Krabs-Run: naming it works before the run is written.
        named = call("contact.list", {}, run=first.run_id)
        waited = time.monotonic() - started
        if engine.store.is_sqlite:
            assert default_runs(engine, account.account_id) == []  # still spooled
    assert first.error is None and again.error is None and named.error is None
    assert first.run_id and first.run_id == again.run_id == named.run_id
    if engine.store.is_sqlite:
        assert waited < 10  # a wait for the writer would have lasted 30 s
    assert recorder(engine).spool.drain(10)
    assert default_runs(engine, account.account_id) == [(first.run_id, utcnow()[:10])]
    created = call("contact.create", {"display_name": "After"})
    assert created.error is None and created.run_id == first.run_id
    ops = [e["op"] for e in tool_calls(engine, account, first.run_id)]
    assert ops == ["contact.list"] * 3 + ["contact.create"]


def test_a_default_run_made_meanwhile_elsewhere_keeps_the_spooled_one(engine, account):
    """Another process made the day's default run before the spool wrote this one: the spooled id
    was already answered, so it is still made (a plain run, its calls' events go there) and later
    calls go to the day's run."""
    principal = authenticate(engine.store, engine.keys, account.secret)
    elsewhere = RunResolver(engine.store)  # another process's resolver
    theirs = elsewhere.resolve(principal, None)
    assert theirs is not None
    resolver = RunResolver(engine.store, recorder(engine).spool)
    key = (principal.account_id, principal.agent_id, utcnow()[:10])
    ours = resolver._spool_default(principal, key)  # as when its writer was held
    assert resolver.resolve(principal, ours) == ours  # named while still spooled
    assert recorder(engine).spool.drain(10)
    assert ours != theirs
    assert sorted(default_runs(engine, account.account_id)) == sorted(
        [(theirs, utcnow()[:10]), (ours, None)]
    )
    assert resolver.resolve(principal, None) == theirs
    assert resolver.resolve(principal, ours) == ours  # an open run, as any other


def test_a_spooled_default_run_that_cannot_be_made_is_resolved_afresh(engine, account):
    """The spooled run could not be written (here: its account is unknown): the next call does not
    keep naming a run that does not exist."""
    principal = authenticate(engine.store, engine.keys, account.secret)
    ghost = dataclasses.replace(principal, account_id="acct_01HG7Z4X9Q8M2N7P3R5T6V8W")
    resolver = RunResolver(engine.store, recorder(engine).spool)
    key = (ghost.account_id, ghost.agent_id, utcnow()[:10])
    spooled = resolver._spool_default(ghost, key)
    assert recorder(engine).spool.drain(10)
    assert key not in resolver._defaults and spooled not in resolver._spooled


def test_an_mcp_sessions_first_call_answers_while_the_writer_is_held(call, engine, account, held):
    """An MCP session's run comes into being with its first call: with the writer held by a long
    transaction its creation is spooled as well, and the call answers."""
    principal = authenticate(engine.store, engine.keys, account.secret)
    session_run = new_id("run")
    with held(engine):
        started = time.monotonic()
        engine.runs.ensure(principal, session_run, "mcp session")
        listed = call("contact.list", {}, run=session_run)
        waited = time.monotonic() - started
    assert listed.error is None and listed.run_id == session_run
    if engine.store.is_sqlite:
        assert waited < 10  # a wait for the writer would have lasted 30 s
    assert recorder(engine).spool.drain(10)
    run = ok(call("run.get", {"id": session_run}))
    assert (run["name"], run["status"]) == ("mcp session", "open")
    assert [e["op"] for e in tool_calls(engine, account, session_run)] == ["contact.list"]


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)  # only SQLite's writer spools
def test_a_spooled_run_stays_nameable_until_it_is_committed(engine, account, held):
    """The spool's batch failed (here: an event of an unknown run in it) and is retried one item at
    a time: the run's first, uncommitted creation does not end its spooled standing."""
    principal = authenticate(engine.store, engine.keys, account.secret)
    resolver = RunResolver(engine.store, recorder(engine).spool)
    run_id = new_id("run")
    standing: list[bool] = []

    def make(conn: sa.Connection) -> None:
        standing.append(run_id in resolver._spooled)
        conn.execute(
            runs.insert().values(
                id=run_id,
                account_id=account.account_id,
                agent_id=principal.agent_id,
                name="spooled",
                status="open",
                created_at=utcnow(),
                updated_at=utcnow(),
            )
        )

    ghost = "run_01HG7Z4X9Q8M2N7P3R5T6V8W"
    with held(engine):  # both wait for the writer, so the spool writes them as one batch
        resolver._spool(principal, run_id, make, "spooled")
        event = {"op": "contact.list", "args": {}}
        recorder(engine).spool.put(
            SpooledEvent(account.account_id, ghost, "contact.list", None, event, utcnow())
        )
    assert recorder(engine).spool.drain(10)
    assert standing == [True, True]  # the batch, then the retry alone
    assert run_id not in resolver._spooled
    assert resolver.resolve(principal, run_id) == run_id  # written: found as any run


def test_a_spooled_run_reads_as_open_and_streams_once_written(call, engine, account, held, live):
    """Before its creation is written, ``run.get`` shows the day's run open and empty (not
    ``not_found``) and its stream opens; once the writer is free its events arrive on that stream."""
    import httpx
    from httpx_sse import connect_sse

    with held(engine) as holder:
        first = call("contact.list", {})
        if engine.store.is_sqlite:
            assert default_runs(engine, account.account_id) == []  # still spooled
        got = ok(call("run.get", {"id": first.run_id}))
        assert (got["id"], got["status"], got["name"]) == (first.run_id, "open", "default")
        seen: list[str] = []

        def read() -> None:
            headers = {"Authorization": f"Bearer {account.secret}"}
            with (
                httpx.Client(base_url=live.url, headers=headers, timeout=20) as http,
                connect_sse(http, "GET", f"/v1/runs/{first.run_id}/stream") as stream,
            ):
                assert stream.response.status_code == 200
                for event in stream.iter_sse():
                    if event.data:
                        seen.append(event.event)
                    if len(seen) == 2:
                        return

        reader = threading.Thread(target=read, daemon=True)
        reader.start()
        time.sleep(0.5)  # the stream is open before the writer frees
        holder.__exit__()
        reader.join(20)
    assert seen == ["run.started", "tool_call"]
    assert ok(call("run.get", {"id": first.run_id}))["stats"]["calls"] >= 1
