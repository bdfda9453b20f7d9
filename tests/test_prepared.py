"""Statements run on the driver (``krabs.store.prepared``) return what SQLAlchemy would."""

from __future__ import annotations

from typing import Any

import pytest
import sqlalchemy as sa

from conftest import make_store
from krabs.store.db import Store
from krabs.store.migrate import migrate
from krabs.store.prepared import Prepared, reused_select
from krabs.store.tables import accounts, contacts, identities

ACCOUNTS = sa.select(accounts).where(accounts.c.id == sa.bindparam("id"))
LABELLED = sa.select(accounts.c.name.label("title"), sa.literal(7).label("seven")).where(
    accounts.c.id == sa.bindparam("id")
)
FLAGS = (
    sa.select(identities.c.id, identities.c.is_primary)
    .where(identities.c.account_id == sa.bindparam("acct"))
    .order_by(identities.c.id)
    .limit(5)
)
EXPANDING = sa.select(accounts.c.id).where(accounts.c.id.in_(sa.bindparam("ids", expanding=True)))


@pytest.fixture
def fresh_store(backend: str, tmp_path: Any) -> Any:
    """A store of its own (a fresh file, or a fresh PostgreSQL schema) with one account."""
    store, cleanup = make_store(backend, tmp_path)
    migrate(store)
    with store.transaction() as conn:
        conn.execute(
            accounts.insert().values(
                id="acct_1",
                name="Ünïcode",
                default_region="GB",
                settings={"b": [1, 2.5, None], "a": {"nested": True}},
                created_at="2026-01-01T00:00:00.000000Z",
                updated_at="2026-01-01T00:00:00.000000Z",
            )
        )
    yield store
    cleanup()


def both(store: Store, stmt: Any, params: dict[str, Any]) -> tuple[list[Any], list[Any]]:
    """(SQLAlchemy's rows, the driver path's rows), the statement seen twice so it qualifies."""
    with store.transaction() as conn:
        expected = conn.execute(stmt, params).all()
        assert reused_select(conn, stmt, params) is None  # first sighting: SQLAlchemy's turn
        result = reused_select(conn, stmt, params)
        assert result is not None
        return expected, result.all()


def test_rows_match_sqlalchemy_including_json_and_column_access(fresh_store):
    expected, got = both(fresh_store, ACCOUNTS, {"id": "acct_1"})
    assert got == expected and len(got) == 1
    row = got[0]
    assert row.settings == {"b": [1, 2.5, None], "a": {"nested": True}}  # JSON decoded
    assert row._mapping["name"] == "Ünïcode"
    assert row._mapping[accounts.c.default_region] == "GB"  # column-object keys work too
    assert dict(row._mapping) == dict(expected[0]._mapping)


def test_labels_literals_limits_and_booleans(fresh_store):
    expected, got = both(fresh_store, LABELLED, {"id": "acct_1"})
    assert got == expected == [("Ünïcode", 7)]
    assert got[0].title == "Ünïcode"
    with fresh_store.transaction() as conn:
        conn.execute(
            contacts.insert().values(
                id="ct_none",
                account_id="acct_1",
                attributes={},
                created_at="2026-01-01T00:00:00.000000Z",
                updated_at="2026-01-01T00:00:00.000000Z",
            )
        )
        conn.execute(
            identities.insert(),
            [
                {
                    "id": f"id_{n}",
                    "account_id": "acct_1",
                    "contact_id": "ct_none",
                    "kind": "email",
                    "value": f"{n}@x.dev",
                    "normalized": f"{n}@x.dev",
                    "norm_hash": str(n),
                    "is_primary": n == 1,
                    "created_at": "2026-01-01T00:00:00.000000Z",
                }
                for n in range(1, 4)
            ],
        )
    expected, got = both(fresh_store, FLAGS, {"acct": "acct_1"})
    assert got == expected
    assert [type(r.is_primary) for r in got] == [bool] * 3
    assert [r.is_primary for r in got] == [True, False, False]


def test_what_does_not_qualify_goes_through_sqlalchemy(fresh_store):
    with fresh_store.transaction() as conn:
        for _ in range(3):
            assert reused_select(conn, EXPANDING, {"ids": ["acct_1"]}) is None
        assert reused_select(conn, accounts.insert(), {}) is None
    with fresh_store.connect(write=False) as conn:  # no transaction begun: not ours to use
        assert reused_select(conn, ACCOUNTS, {"id": "acct_1"}) is None


def test_prepared_insert_uses_the_engines_json_serializer(fresh_store):
    stmt = Prepared(
        sa.update(accounts)
        .where(accounts.c.id == sa.bindparam("acct"))
        .values(settings=sa.bindparam("settings"))
    )
    with fresh_store.transaction() as conn:
        stmt.execute(conn, {"acct": "acct_1", "settings": {"z": 1, "a": 2}})
        stored = conn.exec_driver_sql("SELECT CAST(settings AS text) FROM accounts").scalar_one()
    assert stored == '{"a": 2, "z": 1}'  # sorted, as every other JSON write through the store


def test_utcnow_is_the_fixed_width_iso_form_of_now():
    import datetime as dt
    import re

    from krabs.engine.uow import utcnow

    for _ in range(2000):
        before = dt.datetime.now(dt.UTC)
        text = utcnow()
        after = dt.datetime.now(dt.UTC)
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z", text)
        parsed = dt.datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=dt.UTC)
        assert before - dt.timedelta(microseconds=1) <= parsed <= after


def test_utcnow_with_an_offset_is_that_many_seconds_later():
    import datetime as dt

    from krabs.engine.uow import utcnow

    for offset in (0, 60, 86_400):
        for _ in range(200):
            now = dt.datetime.strptime(utcnow(), "%Y-%m-%dT%H:%M:%S.%fZ")
            later = dt.datetime.strptime(utcnow(offset), "%Y-%m-%dT%H:%M:%S.%fZ")
            assert dt.timedelta(seconds=offset) <= later - now < dt.timedelta(seconds=offset + 1)


def test_parameters_picked_one_or_many_and_a_missing_one_is_a_key_error(fresh_store):
    one = Prepared(sa.select(accounts.c.name).where(accounts.c.id == sa.bindparam("id")))
    many = Prepared(
        sa.select(accounts.c.name).where(
            accounts.c.id == sa.bindparam("id"), accounts.c.name != sa.bindparam("not_name")
        )
    )
    with fresh_store.transaction() as conn:
        assert one.execute(conn, {"id": "acct_1"}) == [("Ünïcode",)]
        assert many.execute(conn, {"id": "acct_1", "not_name": "x"}) == [("Ünïcode",)]
        assert many.execute(conn, {"id": "acct_1", "not_name": "Ünïcode"}) == []
        with pytest.raises(KeyError):
            many.execute(conn, {"id": "acct_1"})


def test_values_of_many_rows_store_flags_and_json_as_sqlalchemy_does(fresh_store):
    """``executemany_values``: booleans checked a batch at a time (not converted row by row) are
    stored as SQLAlchemy stores them; JSON goes through the engine's serializer; a value that is
    no boolean is refused as SQLAlchemy refuses it, and nothing is written."""
    from krabs.engine.uow import insert_of

    now = "2026-01-01T00:00:00.000000Z"
    names = tuple(c.name for c in contacts.columns)
    contact = {n: None for n in names} | {"account_id": "acct_1", "created_at": now}
    contact |= {"updated_at": now, "attributes": {"z": 1, "a": [True]}}
    ident_names = tuple(c.name for c in identities.columns)
    ident = {n: None for n in ident_names} | {"account_id": "acct_1", "kind": "email"}
    ident |= {"value": "a@x.dev", "normalized": "a@x.dev", "created_at": now}

    def ident_rows(*flags: Any) -> list[tuple[Any, ...]]:
        return [
            tuple(
                (
                    {**ident, "id": f"id_{n}", "contact_id": "ct_1", "norm_hash": f"h{n}"}
                    | {"is_primary": flag}
                )[c]
                for c in ident_names
            )
            for n, flag in enumerate(flags)
        ]

    with fresh_store.transaction() as conn:
        insert_of(contacts, names).executemany_values(
            conn, names, [tuple({**contact, "id": "ct_1"}[n] for n in names)]
        )
        insert_of(identities, ident_names).executemany_values(
            conn, ident_names, ident_rows(True, False, True)
        )
        stored = conn.exec_driver_sql("SELECT CAST(attributes AS text) FROM contacts").scalar_one()
        flags = conn.exec_driver_sql("SELECT is_primary FROM identities ORDER BY id").all()
        read = conn.execute(sa.select(identities.c.is_primary).order_by(identities.c.id)).all()
    assert stored == '{"a": [true], "z": 1}'
    assert [f[0] for f in flags] == [1, 0, 1]  # SQLite's integers, PostgreSQL's booleans
    assert [r[0] for r in read] == [True, False, True]
    refused = pytest.raises((TypeError, sa.exc.StatementError), match="boolean")
    with refused, fresh_store.transaction() as conn:
        insert_of(identities, ident_names).executemany_values(
            conn, ident_names, ident_rows(True, "yes")
        )
    with fresh_store.connect(write=False) as conn:
        assert conn.exec_driver_sql("SELECT count(*) FROM identities").scalar_one() == 3


def test_select_rows_runs_one_sql_text_on_both_backends(store: Store) -> None:
    """``select_rows``: the same ``?``-marked SQL on SQLite's driver and through PostgreSQL's, in
    the caller's transaction; SQL with a ``%`` (the other drivers' marker) is refused."""
    from krabs.store.prepared import select_rows

    with store.transaction() as conn:
        conn.execute(
            accounts.insert().values(
                id="acct_select_rows",
                name="Ünïcode ? 'quoted'",
                settings={},
                created_at="2026-01-01T00:00:00.000000Z",
                updated_at="2026-01-01T00:00:00.000000Z",
            )
        )
        rows = select_rows(
            conn,
            "SELECT id, name FROM accounts WHERE id IN (?, ?) AND name <> ?",
            ("acct_select_rows", "acct_none", "x"),
        )
        assert [tuple(r) for r in rows] == [("acct_select_rows", "Ünïcode ? 'quoted'")]
        with pytest.raises(ValueError, match="%"):
            select_rows(conn, "SELECT id FROM accounts WHERE name LIKE '%a'", ())
        conn.rollback()
    with store.connect(write=False) as conn:  # outside a transaction SQLAlchemy began
        assert (
            select_rows(conn, "SELECT count(*) FROM accounts WHERE id = ?", ("acct_none",))[0][0]
            == 0
        )


def test_in_a_transaction_both_backends_run_on_the_driver_and_raise_sqlalchemys_errors(
    fresh_store: Store,
) -> None:
    """Hot statements skip SQLAlchemy's execution on SQLite and on PostgreSQL alike; a driver error
    is SQLAlchemy's own (``IntegrityError``), and a savepoint rolled back leaves the transaction
    usable, as it would through SQLAlchemy."""
    rename = Prepared(
        sa.update(accounts)
        .where(accounts.c.id == sa.bindparam("acct"))
        .values(name=sa.bindparam("name"))
    )
    insert = Prepared(
        accounts.insert(), column_keys=["id", "name", "settings", "created_at", "updated_at"]
    )
    now = "2026-01-01T00:00:00.000000Z"
    stamps = {"settings": {}, "created_at": now, "updated_at": now}
    through_sqlalchemy: list[str] = []

    def seen(conn: Any, cursor: Any, statement: str, *_: Any) -> None:
        through_sqlalchemy.append(statement)

    with fresh_store.transaction() as conn:
        sa.event.listen(fresh_store.engine, "before_cursor_execute", seen)
        try:
            rename.execute(conn, {"acct": "acct_1", "name": "Renamed"})
            insert.executemany(
                conn,
                [{"id": f"acct_{n}", "name": "n", **stamps} for n in (2, 3)],
            )
        finally:
            sa.event.remove(fresh_store.engine, "before_cursor_execute", seen)
        assert through_sqlalchemy == []
        with pytest.raises(sa.exc.IntegrityError), conn.begin_nested():
            insert.execute(conn, {"id": "acct_1", "name": "dup", **stamps})
        names = conn.execute(sa.select(accounts.c.id, accounts.c.name).order_by(accounts.c.id))
        assert names.all() == [("acct_1", "Renamed"), ("acct_2", "n"), ("acct_3", "n")]
