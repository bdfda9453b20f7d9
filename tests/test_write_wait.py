"""A write does not wait forever for SQLite's single writer: held by a long transaction (an
import) past ``KRABS_WRITE_WAIT_SECONDS``, a queued write is answered ``busy`` (503, Retry-After)
and is never run; a write the writer has already taken runs to the end and gets its answer."""

from __future__ import annotations

import asyncio
import dataclasses
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from conftest import ok
from krabs.contract.registry import REGISTRY
from krabs.engine import CallRequest, Engine
from krabs.engine.writer import BUSY_RETRY_AFTER, GroupWriter
from krabs.store.tables import contacts

#: SQLite only: PostgreSQL has no single writer, so writes never queue for one there.
pytestmark = pytest.mark.parametrize("backend", ["sqlite"], indirect=True)


@pytest.fixture
def sqlite_engine(engine: Engine) -> Engine:
    assert engine.store.is_sqlite
    return engine


@pytest.fixture
def held_writer(sqlite_engine: Engine) -> Iterator[threading.Event]:
    """Another thread holds a write transaction, like a job's import, until the event is set."""
    release, held = threading.Event(), threading.Event()

    def hold() -> None:
        with sqlite_engine.store.transaction(write=True):
            held.set()
            release.wait(30)

    thread = threading.Thread(target=hold, daemon=True)
    thread.start()
    assert held.wait(10)
    yield release
    release.set()
    thread.join(10)


def names(engine: Engine, account_id: str) -> list[str]:
    with engine.store.connect(write=False) as conn:
        return list(
            conn.execute(
                sa.select(contacts.c.display_name).where(contacts.c.account_id == account_id)
            ).scalars()
        )


def create(account: Any, name: str) -> CallRequest:
    args = {"display_name": name}
    return CallRequest(op="contact.create", args=args, api_key=account.secret, transport="test")


def test_a_queued_write_is_answered_busy_and_never_runs(sqlite_engine, account, held_writer):
    writer = GroupWriter(sqlite_engine.store, sqlite_engine.call, wait=0.3)
    started = time.monotonic()
    outcome = asyncio.run(writer.submit(create(account, "Queued")))
    assert time.monotonic() - started < 5
    assert outcome.error is not None and outcome.error.code == "busy"
    assert outcome.status == 503 and outcome.retry_after == BUSY_RETRY_AFTER
    held_writer.set()
    time.sleep(0.3)  # the writer thread gets the database now: it must skip the abandoned call
    done = asyncio.run(writer.submit(create(account, "Later")))
    assert done.error is None
    assert sorted(names(sqlite_engine, account.account_id)) == ["Later"]


def test_a_write_already_taken_runs_to_the_end(sqlite_engine, account, monkeypatch):
    """The writer took the slow write before the deadline: it is answered with its result,
    while the write queued behind it is answered busy and not run."""
    op = REGISTRY.get("contact.create")
    assert op is not None
    real = op.handler

    def slow(uow: Any, args: Any) -> Any:
        if args.display_name == "Slow":
            time.sleep(0.8)
        return real(uow, args)

    monkeypatch.setitem(REGISTRY._ops, op.name, dataclasses.replace(op, handler=slow))
    writer = GroupWriter(sqlite_engine.store, sqlite_engine.call, wait=0.3)

    async def both() -> list[Any]:
        first = asyncio.ensure_future(writer.submit(create(account, "Slow")))
        await asyncio.sleep(0.1)  # the writer has taken "Slow" and is running it
        second = asyncio.ensure_future(writer.submit(create(account, "Behind")))
        return list(await asyncio.gather(first, second))

    slow_outcome, behind = asyncio.run(both())
    assert slow_outcome.error is None and slow_outcome.result["display_name"] == "Slow"
    assert behind.error is not None and behind.error.code == "busy"
    time.sleep(0.2)
    assert names(sqlite_engine, account.account_id) == ["Slow"]


def test_http_answers_busy_with_retry_after(sqlite_engine, http, account, held_writer, monkeypatch):
    writer = sqlite_engine._writer
    assert writer is not None
    monkeypatch.setattr(writer, "wait", 0.3)
    r = http.post("/v1/contact.create", json={"display_name": "Held"})
    assert r.status_code == 503, r.text
    assert r.headers["Retry-After"] == "5"
    error = r.json()["error"]
    assert error["code"] == "busy" and error["op"] == "contact.create"
    # Reads still answer meanwhile, the first of the day too (their run events and the day's
    # default run are spooled): waiting for the writer would last 30 s.
    started = time.monotonic()
    assert http.post("/v1/contact.list", json={}).status_code == 200
    assert time.monotonic() - started < 10
    held_writer.set()
    assert ok_after(http, "Held again").status_code == 200
    assert "Held" not in names(sqlite_engine, account.account_id)


def ok_after(http: httpx.Client, name: str) -> httpx.Response:
    deadline = time.monotonic() + 10
    while True:
        r = http.post("/v1/contact.create", json={"display_name": name})
        if r.status_code != 503 or time.monotonic() > deadline:
            return r
        time.sleep(0.1)


def test_busy_is_listed_for_every_mutation(engine: Engine) -> None:
    for op in engine.registry:
        assert ("busy" in op.all_errors) == op.mutates, op.name


def test_without_a_limit_a_write_waits(sqlite_engine, account, held_writer) -> None:
    writer = GroupWriter(sqlite_engine.store, sqlite_engine.call, wait=0)

    async def later() -> Any:
        task = asyncio.ensure_future(writer.submit(create(account, "Patient")))
        await asyncio.sleep(0.5)
        assert not task.done()
        held_writer.set()
        return await asyncio.wait_for(task, 10)

    assert ok(asyncio.run(later()))["display_name"] == "Patient"
