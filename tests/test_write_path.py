"""The write path's shared encodings: the sealed audit payload holds exactly the call's arguments,
result and changes, and the stored idempotent response reuses the payload's encoding of the result:
both must stay exactly what encoding each value on its own gives."""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Callable
from typing import Any

import rfc8785
import sqlalchemy as sa

from conftest import ok
from krabs.audit.log import load_payload
from krabs.store.tables import audit_actions, idempotency_keys, run_events


def test_payload_record_and_stored_response_encode_the_same_values(engine, account, call):
    # A float and a non-ASCII key send the result down rfc8785's own path, the rest down the fast one.
    args = {
        "display_name": "Zoë \u2028 Ω",
        "attributes": {"score": 1.5, "ünï": ["x", None, True, 10**15]},
        "identities": [{"kind": "email", "value": "zoe.payload@example.com"}],
    }
    first = call("contact.create", args, idem="splice-1")
    result = ok(first)
    with engine.store.connect(write=False) as conn:
        action = conn.execute(
            sa.select(audit_actions).where(audit_actions.c.id == first.action_id)
        ).one()
        payload = load_payload(conn, account.account_id, action.payload_digest, images=True)
        stored = conn.execute(
            sa.select(idempotency_keys.c.response).where(
                idempotency_keys.c.account_id == account.account_id,
                idempotency_keys.c.key == "splice-1",
            )
        ).scalar_one()
        event = conn.execute(
            sa.select(run_events.c.data).where(run_events.c.action_id == first.action_id)
        ).scalar_one()
    assert payload["result"] == result and payload["args"]["attributes"] == args["attributes"]
    assert [c["table"] for c in payload["changes"]] == ["contacts", "identities"]
    assert all(c.get("before", None) is None for c in payload["changes"])  # created: no before
    record = json.loads(action.record)
    assert action.record.encode() == rfc8785.dumps(record)  # the hashed record is RFC 8785
    assert record["payload_digest"] == action.payload_digest
    # The record commits to the result with a salted HMAC, never a plain digest of it.
    assert record["result_digest"] != hashlib.sha256(rfc8785.dumps(result)).hexdigest()
    assert stored.encode() == json.dumps(result, separators=(",", ":")).encode()
    assert json.loads(stored) == result
    assert json.loads(event)["result"] == result
    again = call("contact.create", args, idem="splice-1")
    assert again.replayed and ok(again) == result and again.action_id == first.action_id


def test_savepoints_named_by_depth_nest_roll_back_and_release_what_they_hold(tmp_path):
    from krabs.store.db import Savepoint, Store

    store = Store(f"sqlite:///{tmp_path}/sp.db")
    try:
        with store.engine.begin() as conn:
            conn.exec_driver_sql("CREATE TABLE t (v INTEGER)")
        seen: list[str] = []
        with store.batch():
            conn = store._local.batch
            conn.connection.dbapi_connection.set_trace_callback(seen.append)
            for round_ in range(3):
                outer = store.begin(conn)
                assert isinstance(outer, Savepoint)
                conn.exec_driver_sql(f"INSERT INTO t VALUES ({round_ * 10 + 1})")
                inner = store.begin(conn)
                conn.exec_driver_sql(f"INSERT INTO t VALUES ({round_ * 10 + 2})")
                inner.rollback()
                left_open = store.begin(conn)  # never settled: the outer release takes it along
                conn.exec_driver_sql(f"INSERT INTO t VALUES ({round_ * 10 + 3})")
                del left_open
                outer.commit()
            failed = store.begin(conn)
            conn.exec_driver_sql("INSERT INTO t VALUES (99)")
            failed.rollback()
            conn.connection.dbapi_connection.set_trace_callback(None)
        with store.engine.connect() as conn:
            values = sorted(r[0] for r in conn.exec_driver_sql("SELECT v FROM t"))
        assert values == [1, 3, 11, 13, 21, 23]
        savepoints = {s for s in seen if "SAVEPOINT" in s}
        assert savepoints == {
            "SAVEPOINT krabs_sp_1",
            "SAVEPOINT krabs_sp_2",
            "ROLLBACK TO SAVEPOINT krabs_sp_2",
            "RELEASE SAVEPOINT krabs_sp_2",
            "RELEASE SAVEPOINT krabs_sp_1",
            "ROLLBACK TO SAVEPOINT krabs_sp_1",
        }
    finally:
        store.dispose()


def test_record_signatures_are_the_ed25519_signatures_cryptography_makes(tmp_path):
    import os

    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from krabs.audit.signing import SigningKey, verify

    for _ in range(20):
        seed = os.urandom(32)
        key = SigningKey.from_seed(seed)
        reference = Ed25519PrivateKey.from_private_bytes(seed)
        for message in (b"", os.urandom(32), os.urandom(1000)):
            signature = key.sign(message)
            assert signature == reference.sign(message)
            assert verify(key.public, signature, message)
            assert not verify(key.public, signature, message + b"x")


def test_a_call_failing_after_its_audit_append_leaves_the_batch_chain_intact(tmp_path, monkeypatch):
    """In a group commit each write takes the audit head the previous one left in the batch's
    memo; a call rolled back after appending must not leave its head there."""
    from conftest import test_settings
    from krabs.accounts import create_account
    from krabs.audit.log import GENESIS
    from krabs.audit.sources import from_database
    from krabs.audit.verify import verify_log
    from krabs.engine import Engine
    from krabs.runs import record
    from krabs.store.db import Store
    from krabs.store.migrate import migrate
    from test_group_commit import create, in_one_batch, rows

    store = Store(f"sqlite:///{tmp_path}/memo.db")
    migrate(store)
    engine = Engine(store, test_settings(data_dir=tmp_path))
    try:
        acct = create_account(store, "Memo")
        real = record.append_event

        def append_event(conn, **kw):  # the event step runs after the audit payload is stored
            if kw["data"]["args"].get("display_name") == "fails late":
                raise RuntimeError("the event could not be stored")
            return real(conn, **kw)

        monkeypatch.setattr(record, "append_event", append_event)
        requests = [
            create(acct),
            create(acct),
            create(acct, display_name="fails late"),
            create(acct),
            create(acct, dry_run=True),
            create(acct),
        ]
        outcomes = in_one_batch(engine, requests)
        assert outcomes[2].error is not None and outcomes[2].error.code == "internal"
        written = [outcomes[i].action_id for i in (0, 1, 3, 5)]
        assert all(written)
        actions = sorted(rows(store, audit_actions, acct.account_id), key=lambda r: r.seq)
        assert [a.id for a in actions] == written and [a.seq for a in actions] == [1, 2, 3, 4]
        prev = GENESIS
        for action in actions:
            assert action.prev_hash == prev
            prev = action.hash
        with store.connect(write=False) as conn:
            assert verify_log(from_database(conn, acct.account_id), workers=1).records == 4
    finally:
        store.dispose()


def test_the_audit_record_joins_the_chain_last(engine, account, call):
    """The chain's head is a row every write of the account locks until its transaction ends (on
    PostgreSQL): the record joins the chain after the write's other statements, right before the
    commit, so the lock is held as briefly as possible."""
    seen: list[str] = []
    if engine.store.is_sqlite:
        raw = engine.store._writer().connection.dbapi_connection  # this thread's writer
        raw.set_trace_callback(seen.append)
        stop = lambda: raw.set_trace_callback(None)  # noqa: E731
    else:  # every statement reaches psycopg through a cursor: record them there, on this thread
        stop = _record_psycopg(engine.store.engine, seen)
    try:
        ok(call("contact.create", {"display_name": "Last in line"}, idem="chain-last"))
    finally:
        stop()

    def first(*words: str) -> int:
        return next(i for i, s in enumerate(seen) if all(w in s for w in words))

    chain = min(first("audit_heads"), first("INSERT INTO audit_actions"))
    assert first("INSERT INTO audit_payloads") < chain
    assert first("INSERT INTO idempotency_keys") < chain
    assert first("INSERT INTO run_events") < chain


def _record_psycopg(engine: sa.Engine, seen: list[str]) -> Callable[[], None]:
    """Record the SQL of every cursor this thread's pooled psycopg connections run, below
    SQLAlchemy (hot statements skip it); returns what stops recording."""
    import psycopg

    me = threading.get_ident()

    class Recording(psycopg.Cursor):  # type: ignore[type-arg]
        def execute(self, query, params=None, **kw):  # type: ignore[no-untyped-def]
            if threading.get_ident() == me:
                seen.append(str(query))
            return super().execute(query, params, **kw)

        def executemany(self, query, params_seq, **kw):  # type: ignore[no-untyped-def]
            if threading.get_ident() == me:
                seen.append(str(query))
            return super().executemany(query, params_seq, **kw)

    def checkout(dbapi_conn: Any, *_: Any) -> None:
        if threading.get_ident() == me:
            dbapi_conn.cursor_factory = Recording

    def checkin(dbapi_conn: Any, *_: Any) -> None:
        if dbapi_conn.cursor_factory is Recording:
            dbapi_conn.cursor_factory = psycopg.Cursor

    sa.event.listen(engine, "checkout", checkout)
    sa.event.listen(engine, "checkin", checkin)

    def stop() -> None:
        sa.event.remove(engine, "checkout", checkout)
        sa.event.remove(engine, "checkin", checkin)

    return stop
