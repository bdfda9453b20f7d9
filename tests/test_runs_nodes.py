"""Two real `krabs serve` processes on one PostgreSQL: a write on node A appears on a stream from
node B (and the other way round), carried by LISTEN/NOTIFY, with no gap and no duplicate."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from httpx_sse import connect_sse

from conftest import IN_CI, PG_ADMIN_URL, free_port, pg_available

KEY = "krabs_sk_nodestest000000000000000000000"
AUTH = {"Authorization": f"Bearer {KEY}"}


@pytest.fixture(scope="module")
def schema() -> Iterator[str]:
    if not pg_available():
        if IN_CI:
            pytest.fail("CI=true but PostgreSQL at 127.0.0.1:5432 does not answer")
        pytest.skip("PostgreSQL at 127.0.0.1:5432 not reachable")
    name = f"krabs_nodes_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE SCHEMA "{name}"'))
    yield name
    with admin.connect() as conn:
        conn.execute(sa.text(f'DROP SCHEMA "{name}" CASCADE'))
    admin.dispose()


def serve(tmp_path: Any, schema: str, name: str) -> tuple[subprocess.Popen[str], str]:
    port = free_port()
    url = sa.engine.make_url(PG_ADMIN_URL).set(drivername="postgresql")
    database_url = url.render_as_string(hide_password=False) + f"?options=-csearch_path%3D{schema}"
    proc = subprocess.Popen(
        [sys.executable, "-m", "krabs", "serve", "--port", str(port)],
        env={
            **os.environ,
            "KRABS_DATA_DIR": str(tmp_path / "data"),
            "KRABS_DATABASE_URL": database_url,
            "KRABS_BOOTSTRAP_KEY": KEY,
            "KRABS_RATE_LIMIT_PER_SECOND": "0",
        },
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(base + "/healthz", timeout=1).status_code == 200:
                return proc, base
        except httpx.HTTPError:
            time.sleep(0.1)
        if proc.poll() is not None:
            break
    proc.kill()
    raise AssertionError(f"node {name} did not start: {proc.stderr.read() if proc.stderr else ''}")


@pytest.fixture(scope="module")
def nodes(tmp_path_factory, schema) -> Iterator[tuple[str, str]]:
    """Two nodes sharing the database and the data directory (the audit signing key)."""
    tmp_path = tmp_path_factory.mktemp("nodes")
    a, url_a = serve(tmp_path, schema, "a")  # first alone: it migrates the schema
    try:
        b, url_b = serve(tmp_path, schema, "b")
        try:
            yield url_a, url_b
        finally:
            b.terminate()
            b.communicate(timeout=15)
    finally:
        a.terminate()
        a.communicate(timeout=15)


def test_a_write_on_one_node_streams_from_the_other(nodes):
    url_a, url_b = nodes
    with (
        httpx.Client(base_url=url_a, headers=AUTH, timeout=30) as a,
        httpx.Client(base_url=url_b, headers=AUTH, timeout=30) as b,
    ):
        run = a.post("/v1/run.create", json={"name": "two nodes"}).json()["id"]
        on_run = {"X-Krabs-Run": run}
        got: list[tuple[int, str, str | None]] = []
        firehose: list[str] = []
        connected = threading.Event()

        def hose() -> None:
            with connect_sse(b, "GET", "/v1/runs/stream") as stream:
                for event in stream.iter_sse():
                    if not event.data:
                        connected.set()
                        continue
                    data = event.json()
                    if data["run_id"] == run:
                        firehose.append(event.event)
                        if event.event == "run.completed":
                            return

        hose_thread = threading.Thread(target=hose, daemon=True)
        hose_thread.start()
        assert connected.wait(20)
        with connect_sse(b, "GET", f"/v1/runs/{run}/stream") as stream:
            events = stream.iter_sse()
            for event in events:  # B's history: run.started, then live
                if event.data:
                    got.append((int(event.id), event.event, event.json().get("op")))
                    break
            for i in range(5):
                assert a.post(
                    "/v1/contact.create", json={"display_name": f"n{i}"}, headers=on_run
                ).is_success
            assert b.post("/v1/contact.list", json={}, headers=on_run).is_success  # B's own
            assert a.post("/v1/run.close", json={"id": run}).is_success
            for event in events:
                if event.data:
                    got.append((int(event.id), event.event, event.json().get("op")))
        hose_thread.join(20)
    assert [seq for seq, _, _ in got] == list(range(1, 9))
    assert [op for _, kind, op in got if kind == "tool_call"] == ["contact.create"] * 5 + [
        "contact.list"
    ]
    assert got[-1][1] == "run.completed"
    assert firehose == ["tool_call"] * 6 + ["run.completed"]


def test_a_stream_on_one_node_sees_writes_from_both_without_duplicates(nodes):
    url_a, url_b = nodes
    with (
        httpx.Client(base_url=url_a, headers=AUTH, timeout=30) as a,
        httpx.Client(base_url=url_b, headers=AUTH, timeout=30) as b,
    ):
        run = b.post("/v1/run.create", json={"name": "both"}).json()["id"]
        on_run = {"X-Krabs-Run": run}

        def writes(client: httpx.Client, tag: str) -> None:
            for i in range(20):
                client.post(
                    "/v1/contact.create", json={"display_name": f"{tag}{i}"}, headers=on_run
                )

        seen: list[int] = []
        with connect_sse(a, "GET", f"/v1/runs/{run}/stream") as stream:
            threads = [
                threading.Thread(target=writes, args=(c, t)) for c, t in ((a, "a"), (b, "b"))
            ]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            b.post("/v1/run.close", json={"id": run})
            for event in stream.iter_sse():
                if event.data:
                    seen.append(int(event.id))
    assert seen == list(range(1, 1 + 1 + 40 + 1))


def test_a_caller_waiting_at_a_gate_on_one_node_is_woken_by_a_decision_on_the_other(nodes):
    url_a, url_b = nodes
    with (
        httpx.Client(base_url=url_a, headers=AUTH, timeout=60) as a,
        httpx.Client(base_url=url_b, headers=AUTH, timeout=60) as b,
    ):
        agent = f"agent_gate{uuid.uuid4().hex[:8]}"
        made = a.post("/v1/api_key.create", json={"name": "gated", "agent_id": agent})
        secret = made.json()["secret"]
        rules = {"agent_id": agent, "rules": [{"op": "contact.delete"}]}
        assert a.post("/v1/approval_policy.set", json=rules).is_success
        as_agent = {"Authorization": f"Bearer {secret}"}
        run = b.post("/v1/run.create", json={"name": "gate"}, headers=as_agent).json()["id"]
        contact = b.post("/v1/contact.create", json={"display_name": "Held"}).json()["id"]
        out: dict[str, Any] = {}

        def held() -> None:
            headers = {**as_agent, "X-Krabs-Run": run, "Idempotency-Key": "x", "Prefer": "wait=30"}
            out["r"] = b.post("/v1/contact.delete", json={"id": contact}, headers=headers)

        thread = threading.Thread(target=held, daemon=True)
        thread.start()
        for _ in range(400):
            pending = a.post("/v1/approval.list", json={"status": "pending", "run_id": run})
            if pending.json()["data"]:
                break
            time.sleep(0.05)
        approval = pending.json()["data"][0]["id"]
        assert "r" not in out  # held on node B
        decided = a.post("/v1/approval.decide", json={"id": approval, "decision": "approve"})
        assert decided.is_success, decided.text
        thread.join(40)
    # Node A's decision reached node B's waiter through LISTEN/NOTIFY: the held call ran there.
    assert out["r"].status_code == 200, out["r"].text
    assert out["r"].json()["deleted"] is True
