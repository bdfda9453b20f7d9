"""Fixtures: every storage-touching test runs on SQLite and on PostgreSQL (its own schema per test
run). In CI (CI=true) PostgreSQL is required; locally its variant skips, saying so, when none answers."""

from __future__ import annotations

import os
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
import uvicorn

from krabs.accounts import NewAccount, create_account
from krabs.config import Settings
from krabs.engine import CallRequest, Engine, Outcome
from krabs.store.db import Store
from krabs.store.migrate import migrate
from krabs.store.tables import metadata
from krabs.transports.http import create_app

PG_ADMIN_URL = os.environ.get(
    "KRABS_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def pg_available() -> bool:
    try:
        eng = sa.create_engine(PG_ADMIN_URL, connect_args={"connect_timeout": 3})
        with eng.connect() as conn:
            conn.execute(sa.text("SELECT 1"))
        eng.dispose()
        return True
    except Exception:
        return False


def make_store(backend: str, tmp_dir: Any) -> tuple[Store, Callable[[], None]]:
    if backend == "sqlite":
        store = Store(f"sqlite:///{tmp_dir}/krabs.db")
        return store, store.dispose
    if not pg_available():
        if IN_CI:
            pytest.fail("CI=true but PostgreSQL at 127.0.0.1:5432 does not answer")
        pytest.skip(
            "PostgreSQL at 127.0.0.1:5432 not reachable; PostgreSQL variant skipped locally"
        )
    schema = f"krabs_test_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    store = Store(f"{PG_ADMIN_URL}?options=-csearch_path%3D{schema}")

    def drop() -> None:
        store.dispose()
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()

    return store, drop


def test_settings(**overrides: Any) -> Settings:
    base: dict[str, Any] = {"validate_output": True, "rate_limit_per_second": 0}
    base.update(overrides)
    return Settings(**base)


@pytest.fixture(scope="session", params=["sqlite", "postgresql"])
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture(scope="session")
def store(backend: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Store]:
    s, cleanup = make_store(backend, tmp_path_factory.mktemp(backend))
    migrate(s)
    yield s
    cleanup()


@pytest.fixture(scope="session")
def engine(store: Store, tmp_path_factory: pytest.TempPathFactory) -> Engine:
    return Engine(store, test_settings(data_dir=tmp_path_factory.mktemp("data")))


@pytest.fixture
def account(engine: Engine) -> NewAccount:
    return create_account(engine.store, "Test account")


Caller = Callable[..., Outcome]


@pytest.fixture
def call(engine: Engine, account: NewAccount) -> Caller:
    """``call(op, args, key=…, idem=…, run=…, dry_run=…)`` through the engine, as the account's admin."""

    def _call(
        op: str,
        args: Any = None,
        *,
        key: str | None = None,
        idem: str | None = None,
        run: str | None = None,
    ) -> Outcome:
        return engine.call(
            CallRequest(
                op=op,
                args=args if args is not None else {},
                api_key=key or account.secret,
                idempotency_key=idem,
                run_id=run,
                transport="test",
            )
        )

    return _call


def ok(outcome: Outcome) -> dict[str, Any]:
    assert outcome.error is None, outcome.error and outcome.error.to_dict()
    assert outcome.result is not None
    return outcome.result


def err(outcome: Outcome, code: str) -> dict[str, Any]:
    assert outcome.error is not None, f"expected {code}, got success {outcome.result}"
    assert outcome.error.code == code, outcome.error.to_dict()
    return outcome.error.to_dict()


#: Columns of ``runs`` that the run log keeps up to date on every call (not the database's content).
RUN_LOG_COLUMNS = {
    ("runs", name)
    for name in (
        "last_seq",
        "calls",
        "errors",
        "writes",
        "input_tokens",
        "output_tokens",
        "cost_micros",
        "last_call_at",
        "updated_at",
    )
}


def snapshot(store: Store, account_id: str | None) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every table, ordered: the database's logical content, for equality checks.
    Tables with an ``account_id`` give only that account's rows: background work of earlier tests
    (the run sweeper, the job worker, spooled run events) may change other accounts' rows at any
    moment. Required, so no comparison spans the whole database by accident; ``None`` means every
    account's rows, for a test that must see all of them."""
    out: dict[str, list[tuple[Any, ...]]] = {}
    with store.connect(write=False) as conn:
        for table in metadata.sorted_tables:
            if table.name == "run_events":
                continue  # the run log records every call, reads and dry-runs included
            columns = [c for c in table.c if (table.name, c.name) not in RUN_LOG_COLUMNS]
            query = sa.select(*columns)
            if account_id is not None and "account_id" in table.c:
                query = query.where(table.c.account_id == account_id)
            rows = conn.execute(query).all()
            out[table.name] = sorted(tuple(repr(v) for v in r) for r in rows)
    return out


def settle_jobs(engine: Engine, account_id: str, timeout: float = 60) -> None:
    """Wait until the account's queued jobs have run: a worker of this process or of the session's
    server may take one at any moment, and a before/after snapshot must not straddle that."""
    from krabs.runs.jobs import ensure_worker
    from krabs.store.tables import jobs

    pending = sa.select(sa.func.count()).where(
        jobs.c.account_id == account_id, jobs.c.status.in_(("queued", "running"))
    )
    deadline = time.monotonic() + timeout
    while True:
        with engine.store.connect(write=False) as conn:
            if not conn.execute(pending).scalar_one():
                return
        if time.monotonic() > deadline:
            raise AssertionError(f"the jobs of {account_id} did not finish in {timeout} s")
        ensure_worker(engine, idle_exit=5).wake.set()
        time.sleep(0.05)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class LiveServer:
    """A real uvicorn server on a free loopback port, in a thread of this process."""

    def __init__(self, engine: Engine) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        config = uvicorn.Config(
            create_app(engine),
            host="127.0.0.1",
            port=self.port,
            log_level="warning",
            lifespan="off",
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> LiveServer:
        self.thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("live server did not start")
            time.sleep(0.02)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


@pytest.fixture(scope="session")
def live(engine: Engine) -> Iterator[LiveServer]:
    with LiveServer(engine) as server:
        yield server


@pytest.fixture
def http(live: LiveServer, account: NewAccount) -> Iterator[httpx.Client]:
    with httpx.Client(
        base_url=live.url, headers={"Authorization": f"Bearer {account.secret}"}, timeout=30
    ) as client:
        yield client
