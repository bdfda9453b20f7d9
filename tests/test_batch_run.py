"""POST /v1/run: a list of calls executed as a new run — streamed as its SSE events (X-Run-ID), answered
whole (stream: false) or queued as a job (202, job.get); and POST /v1/runs/{id}/input, over a real
live server."""

from __future__ import annotations

import json
import time
from typing import Any

import httpx
import pytest

from conftest import Caller, ok
from krabs.accounts import create_account
from krabs.engine import Engine


def _frames(text: str) -> list[dict[str, Any]]:
    out = []
    for block in text.split("\n\n"):
        frame: dict[str, Any] = {}
        for line in block.splitlines():
            field, _, value = line.partition(": ")
            if field in ("id", "event", "data"):
                frame[field] = value
        if "data" in frame:
            frame["data"] = json.loads(frame["data"])
            out.append(frame)
    return out


CALLS = [
    {"op": "contact.create", "args": {"display_name": "Ada"}},
    {"op": "contact.list", "args": {"limit": 1}},
    {"op": "contact.get", "args": {"id": "ct_01HG7Z4X9Q8M2N7P3R5T6V8W"}},
]


def test_streamed_batch_is_the_runs_event_log(http: httpx.Client) -> None:
    with http.stream("POST", "/v1/run", json={"calls": CALLS, "name": "batch one"}) as r:
        assert r.status_code == 200
        assert r.headers["content-type"].startswith("text/event-stream")
        run_id = r.headers["x-run-id"]
        text = r.read().decode()
    frames = _frames(text)
    events = [f for f in frames if f.get("event") != "done"]
    assert [int(f["id"]) for f in events] == list(range(1, len(events) + 1))  # gap-free, in order
    kinds = [f["event"] for f in events]
    assert kinds[0] == "run.started" and kinds[-1] == "run.failed"
    calls = [f["data"] for f in events if f["event"] == "tool_call"]
    assert [c["op"] for c in calls] == ["contact.create", "contact.list", "contact.get"]
    assert calls[2]["error"]["code"] == "not_found" and calls[0]["result"]["display_name"] == "Ada"
    done = frames[-1]
    assert done["event"] == "done" and done["data"]["summary"] == {"calls": 3, "ok": 2, "failed": 1}
    run = http.post("/v1/run.get", json={"id": run_id}).json()
    assert run["name"] == "batch one" and run["status"] == "failed" and run["stats"]["calls"] == 3


def test_unstreamed_batch_returns_every_result(http: httpx.Client) -> None:
    r = http.post("/v1/run", json={"calls": CALLS[:2], "stream": False})
    assert r.status_code == 200
    body = r.json()
    assert body["run_id"] == r.headers["x-run-id"] and body["status"] == "completed"
    assert [x["ok"] for x in body["results"]] == [True, True]
    assert body["results"][0]["action_id"].startswith("act_")
    stopped = http.post(
        "/v1/run", json={"calls": [CALLS[2], CALLS[0]], "stream": False, "stop_on_error": True}
    ).json()
    assert len(stopped["results"]) == 1 and stopped["status"] == "failed"


def test_batch_calls_keep_their_idempotency_keys(http: httpx.Client) -> None:
    calls = [{"op": "tag.create", "args": {"name": "once"}, "idempotency_key": "batch-tag-1"}]
    first = http.post("/v1/run", json={"calls": calls, "stream": False}).json()
    again = http.post("/v1/run", json={"calls": calls, "stream": False}).json()
    assert again["results"][0]["replayed"] is True
    assert again["results"][0]["result"]["id"] == first["results"][0]["result"]["id"]


def test_queued_batch_runs_in_the_background(http: httpx.Client) -> None:
    r = http.post("/v1/run", json={"calls": CALLS[:2], "queue": True, "name": "queued"})
    assert r.status_code == 202
    job = r.json()
    assert job["status"] == "queued" and job["job_id"].startswith("job_")
    assert r.headers["x-run-id"] == job["run_id"]
    deadline = time.monotonic() + 30
    while True:
        got = http.post("/v1/job.get", json={"id": job["job_id"]}).json()
        if got["status"] in ("succeeded", "failed") or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert got["status"] == "succeeded", got
    assert got["result"]["summary"] == {"calls": 2, "ok": 2, "failed": 0}
    run = http.post("/v1/run.get", json={"id": job["run_id"]}).json()
    assert run["status"] == "completed" and run["name"] == "queued"


def test_run_input_decides_an_approval(
    http: httpx.Client, call: Caller, engine: Engine, account: Any
) -> None:
    agent = ok(call("api_key.create", {"name": "a", "agent_id": "agent_in", "scopes": ["write"]}))
    ok(call("approval_policy.set", {"agent_id": "agent_in", "rules": [{"op": "tag.create"}]}))
    run_id = ok(call("run.create", {"name": "gated"}, key=agent["secret"]))["id"]
    headers = {
        "Authorization": f"Bearer {agent['secret']}",
        "X-Krabs-Run": run_id,
        "Idempotency-Key": "in-1",
    }
    r = http.post("/v1/tag.create", json={"name": "gated"}, headers=headers)
    assert r.status_code == 202
    approval_id = r.json()["error"]["approval_id"]
    assert http.post("/v1/run.get", json={"id": run_id}).json()["status"] == "waiting_for_input"
    bad = http.post(f"/v1/runs/{run_id}/input", json={"approval_id": approval_id, "decision": "y"})
    assert bad.status_code == 400 and bad.json()["error"]["param"] == "decision"
    big = http.post(
        f"/v1/runs/{run_id}/input",
        json={"approval_id": approval_id, "decision": "approve", "note": "x" * 40_000},
    )
    assert big.status_code == 413
    wrong_run = http.post(
        "/v1/runs/run_01HG7Z4X9Q8M2N7P3R5T6V8W/input",
        json={"approval_id": approval_id, "decision": "approve"},
    )
    assert wrong_run.status_code == 404 and wrong_run.json()["error"]["param"] == "approval_id"
    d = http.post(
        f"/v1/runs/{run_id}/input", json={"approval_id": approval_id, "decision": "approve"}
    )
    assert d.status_code == 200 and d.json()["status"] == "approved" and d.headers["x-krabs-action"]
    assert http.post("/v1/run.get", json={"id": run_id}).json()["status"] == "open"
    done = http.post("/v1/tag.create", json={"name": "gated"}, headers=headers)
    assert done.status_code == 200 and done.json()["name"] == "gated"


@pytest.mark.parametrize(
    ("body", "status", "param"),
    [
        ({}, 400, "calls"),
        ({"calls": []}, 400, "calls"),
        ({"calls": "contact.list"}, 400, "calls"),
        ({"calls": [{"op": "nope.nope", "args": {}}]}, 400, "calls[0].op"),
        ({"calls": [{"op": "contact.list", "args": []}]}, 400, "calls.0.args"),
        ({"calls": [{"op": "contact.list"}], "surprise": 1}, 400, "surprise"),
        ({"calls": [{"op": "contact.list"}], "stream": "yes"}, 400, "stream"),
        ({"calls": [{"op": "contact.list"}] * 1001}, 400, "calls"),
        ({"calls": [{"op": "x" * 10_000}]}, 400, "calls.0.op"),
    ],
)
def test_hostile_batches(http: httpx.Client, body: Any, status: int, param: str) -> None:
    r = http.post("/v1/run", json=body)
    assert r.status_code == status, r.text
    assert r.json()["error"]["param"] == param


def test_batch_needs_a_key_and_bad_json_is_refused(http: httpx.Client, live: Any) -> None:
    anon = httpx.post(f"{live.url}/v1/run", json={"calls": CALLS})
    assert anon.status_code == 401
    raw = http.post("/v1/run", content=b"{not json", headers={"Content-Type": "application/json"})
    assert raw.status_code == 400 and raw.json()["error"]["code"] == "invalid_json"
    listed = http.post("/v1/run", json=[1, 2])
    assert listed.status_code == 400


def test_another_accounts_job_is_not_found(http: httpx.Client, engine: Engine, live: Any) -> None:
    job = http.post("/v1/run", json={"calls": CALLS[:1], "queue": True}).json()
    other = create_account(engine.store, "other")
    r = httpx.post(
        f"{live.url}/v1/job.get",
        json={"id": job["job_id"]},
        headers={"Authorization": f"Bearer {other.secret}"},
    )
    assert r.status_code == 404


def test_a_job_locked_by_another_node_is_skipped(
    call: Caller, engine: Engine, backend: str
) -> None:
    """On PostgreSQL a worker never waits for nor takes a job another node holds (SKIP LOCKED)."""
    if backend != "postgresql":
        pytest.skip("row locks are PostgreSQL's; SQLite has one writer")
    import concurrent.futures

    import sqlalchemy as sa

    from krabs.runs.jobs import claim
    from krabs.store.tables import jobs

    calls = [{"op": "contact.list", "args": {}}]
    held = ok(call("run.enqueue", {"calls": calls}))["id"]
    ok(call("run.enqueue", {"calls": calls}))
    with engine.store.engine.connect() as other_node, other_node.begin():
        other_node.execute(sa.select(jobs.c.id).where(jobs.c.id == held).with_for_update())
        with concurrent.futures.ThreadPoolExecutor(1) as pool:
            taken = pool.submit(claim, engine.store).result(timeout=10)  # never blocks
        assert taken is None or taken["id"] != held
