"""Group commit on SQLite (``krabs.engine.writer``): writes queued together share one transaction,
each in its own savepoint, and every call behaves exactly as it would alone."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy import event

from conftest import err, ok, snapshot
from conftest import test_settings as settings_for_tests
from krabs.accounts import NewAccount, create_account
from krabs.audit.canonical import canonical
from krabs.audit.log import GENESIS
from krabs.engine import CallRequest, Engine, Outcome
from krabs.runs.hub import hub_for
from krabs.store.db import Store
from krabs.store.migrate import migrate
from krabs.store.prepared import Prepared
from krabs.store.tables import audit_actions, contacts, identities


@pytest.fixture
def sqlite_engine(tmp_path: Any) -> Iterator[Engine]:
    store = Store(f"sqlite:///{tmp_path}/krabs.db")
    migrate(store)
    yield Engine(store, settings_for_tests())
    store.dispose()


@pytest.fixture
def acct(sqlite_engine: Engine) -> NewAccount:
    return create_account(sqlite_engine.store, "Group commit")


def email() -> str:
    return f"gc-{uuid.uuid4().hex[:10]}@example.com"


def create(acct: NewAccount, *, value: str | None = None, **extra: Any) -> CallRequest:
    idem = extra.pop("idem", None)
    dry_run = extra.pop("dry_run", False)
    args = {"display_name": "GC", "identities": [{"kind": "email", "value": value or email()}]}
    return CallRequest(
        op="contact.create",
        args={**args, **extra},
        api_key=acct.secret,
        idempotency_key=idem,
        dry_run=dry_run,
        transport="test",
    )


@contextlib.contextmanager
def commits(store: Store) -> Iterator[list[int]]:
    """Count the COMMITs the store issues meanwhile."""
    seen: list[int] = []

    def on_commit(conn: Any) -> None:
        seen.append(1)

    event.listen(store.engine, "commit", on_commit)
    try:
        yield seen
    finally:
        event.remove(store.engine, "commit", on_commit)


def in_one_batch(engine: Engine, requests: list[CallRequest]) -> list[Outcome]:
    """Queue every request while the database is held, so the writer takes them as one batch
    (after the first, which it took before finding the database busy)."""

    async def main() -> list[Outcome]:
        warm = await engine.acall(requests[0])  # starts the writer; its own batch
        with engine.store.connect(write=True):
            tasks = [asyncio.create_task(engine.acall(r)) for r in requests[1:]]
            await asyncio.sleep(0.3)
        return [warm, *await asyncio.gather(*tasks)]

    return asyncio.run(main())


def rows(store: Store, table: sa.Table, account_id: str) -> list[Any]:
    with store.connect(write=False) as conn:
        return list(conn.execute(sa.select(table).where(table.c.account_id == account_id)).all())


def test_queued_writes_share_one_commit(sqlite_engine, acct):
    requests = [create(acct) for _ in range(12)]
    with commits(sqlite_engine.store) as seen:
        outcomes = in_one_batch(sqlite_engine, requests)
    assert all(o.ok for o in outcomes), [o.error for o in outcomes if o.error]
    assert len({ok(o)["id"] for o in outcomes}) == 12
    # One commit for the first call (and the day's default run), one for the other eleven.
    assert len(seen) <= 3
    assert len(rows(sqlite_engine.store, contacts, acct.account_id)) == 12


def test_a_failing_call_rolls_back_only_itself(sqlite_engine, acct):
    taken = email()
    requests = [
        create(acct),
        create(acct, value=taken),
        create(acct, value=taken),  # conflict: the call before it in the batch owns this email
        create(acct, stage="nonsense"),  # invalid before any write
        create(acct, dry_run=True),
        create(acct),
    ]
    outcomes = in_one_batch(sqlite_engine, requests)
    ok(outcomes[0]), ok(outcomes[1]), ok(outcomes[5])
    err(outcomes[2], "conflict")
    err(outcomes[3], "invalid_argument")
    plan = ok(outcomes[4])
    assert plan["dry_run"] is True
    stored = {r.id for r in rows(sqlite_engine.store, contacts, acct.account_id)}
    assert stored == {ok(outcomes[i])["id"] for i in (0, 1, 5)}
    assert len(rows(sqlite_engine.store, identities, acct.account_id)) == 3
    # The chain holds exactly the three writes, each linked to the one before.
    actions = sorted(rows(sqlite_engine.store, audit_actions, acct.account_id), key=lambda r: r.seq)
    assert [r.seq for r in actions] == [1, 2, 3]
    prev = GENESIS
    for row in actions:
        record = json.loads(row.record)
        assert canonical(record) == row.record.encode()
        assert hashlib.sha256(row.record.encode()).hexdigest() == row.hash
        assert record["prev_hash"] == prev == row.prev_hash
        prev = row.hash
    assert [a.id for a in actions] == [outcomes[i].action_id for i in (0, 1, 5)]


def test_dry_run_in_a_batch_changes_nothing(sqlite_engine, acct):
    ok(sqlite_engine.call(create(acct)))  # the day's run exists, as in any later batch
    before = snapshot(sqlite_engine.store, acct.account_id)
    outcomes = in_one_batch(sqlite_engine, [create(acct, dry_run=True) for _ in range(5)])
    assert all(ok(o)["dry_run"] for o in outcomes)
    assert snapshot(sqlite_engine.store, acct.account_id) == before


def test_same_key_twice_in_a_batch_replays_the_first(sqlite_engine, acct):
    value = email()
    first = create(acct, value=value, idem="same-key")
    outcomes = in_one_batch(sqlite_engine, [create(acct), first, first])
    a, b = ok(outcomes[1]), ok(outcomes[2])
    assert a["id"] == b["id"]
    assert not outcomes[1].replayed and outcomes[2].replayed
    assert len(rows(sqlite_engine.store, contacts, acct.account_id)) == 2


def test_events_are_published_after_the_commit(sqlite_engine, acct, monkeypatch):
    """The run hub hears of a write's tool_call only once its batch committed."""
    hub = hub_for(sqlite_engine.store.engine)
    real_publish = hub.publish
    visible: list[bool] = []

    def publish(events: Any) -> None:
        events = list(events)
        for ev in events:
            result = json.loads(ev.data).get("result") if ev.type == "tool_call" else None
            if ev.op == "contact.create" and result:
                # A fresh connection sees only committed data.
                with sqlite_engine.store.engine.connect() as conn:
                    found = conn.execute(
                        sa.select(contacts.c.id).where(contacts.c.id == result["id"])
                    ).first()
                visible.append(found is not None)
        real_publish(events)

    monkeypatch.setattr(hub, "publish", publish)
    in_one_batch(sqlite_engine, [create(acct) for _ in range(4)])
    assert visible == [True] * 4


def test_a_batch_that_cannot_commit_is_run_call_by_call(sqlite_engine, acct, monkeypatch):
    store = sqlite_engine.store
    real_batch = store.batch
    failures: list[int] = []

    @contextlib.contextmanager
    def failing_batch() -> Iterator[Any]:
        with real_batch() as intact:
            yield intact
            if not failures:
                failures.append(1)
                raise RuntimeError("simulated: the disk is full")

    monkeypatch.setattr(store, "batch", failing_batch)
    requests = [create(acct, idem=f"k{i}") for i in range(6)]
    outcomes = in_one_batch(sqlite_engine, requests)
    assert failures == [1]
    assert all(o.ok for o in outcomes), [o.error for o in outcomes if o.error]
    # Nothing of the failed batch survived, and nothing was written twice.
    assert len(rows(store, contacts, acct.account_id)) == 6
    actions = rows(store, audit_actions, acct.account_id)
    assert sorted(a.seq for a in actions) == list(range(1, 7))


def test_prepared_statements_raise_sqlalchemy_errors(sqlite_engine):
    stmt = Prepared(
        sa.insert(contacts), column_keys=("id", "account_id", "attributes", "created_at")
    )
    with sqlite_engine.store.transaction() as conn, pytest.raises(sa.exc.IntegrityError):
        # A constraint fails (no such account, no updated_at): reported as SQLAlchemy would.
        stmt.execute(conn, {"id": "ct_x", "account_id": "nope", "attributes": {}, "created_at": ""})
