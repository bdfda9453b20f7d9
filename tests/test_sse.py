"""Run streams over Server-Sent Events, against a real live server on both backends: history then
live with no gap and no duplicate, resume by `Last-Event-ID` / `after_seq`, keepalives, the end of
a finished run, slow consumers cut off without stalling writers, the firehose, auth and aliases."""

from __future__ import annotations

import dataclasses
import json
import random
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from httpx_sse import ServerSentEvent, connect_sse

from krabs.accounts import create_account
from krabs.runs import sse
from krabs.runs.attach import insert_run
from krabs.runs.events import append_event, take_pending
from krabs.runs.hub import hub_for


def new_run(http: httpx.Client, name: str = "stream test") -> str:
    response = http.post("/v1/run.create", json={"name": name})
    assert response.status_code == 200, response.text
    return str(response.json()["id"])


def write(engine, account, run_id: str, n: int, *, batch: int = 200, pad: str = "") -> None:
    """Append ``n`` span events quickly, publishing each batch once committed (as writers do)."""
    hub = hub_for(engine.store.engine)
    for start in range(0, n, batch):
        with engine.store.transaction() as conn:
            for _ in range(min(batch, n - start)):
                append_event(
                    conn,
                    account_id=account.account_id,
                    run_id=run_id,
                    type="span",
                    data={"node_name": "gen", "pad": pad},
                )
            events = take_pending(conn)
        hub.publish(events)


def events_of(stream: Any) -> Iterator[ServerSentEvent]:
    """The stream's events (a block holding only the ``retry:`` hint is not one)."""
    for event in stream.iter_sse():
        if event.data or event.event != "message":
            yield event


def read_all(http: httpx.Client, path: str, **kwargs: Any) -> list[ServerSentEvent]:
    with connect_sse(http, "GET", path, **kwargs) as stream:
        assert stream.response.status_code == 200, stream.response.read()
        return list(events_of(stream))


def seqs(events: list[ServerSentEvent]) -> list[int]:
    return [int(e.id) for e in events]


# -- history, live, the end ------------------------------------------------------------------------


def test_history_then_live_then_the_end_of_a_finished_run(http):
    run = new_run(http)
    headers = {"X-Krabs-Run": run}
    for i in range(3):
        assert http.post("/v1/contact.create", json={"display_name": f"h{i}"}, headers=headers)

    def later() -> None:
        time.sleep(0.5)
        for i in range(3):
            http.post("/v1/contact.create", json={"display_name": f"l{i}"}, headers=headers)
        http.post("/v1/run.close", json={"id": run})

    writer = threading.Thread(target=later)
    with connect_sse(http, "GET", f"/v1/runs/{run}/stream") as stream:
        response = stream.response
        assert response.headers["content-type"].startswith("text/event-stream")
        assert response.headers["cache-control"] == "no-cache, no-transform"
        assert response.headers["x-accel-buffering"] == "no"
        assert response.headers["x-krabs-run"] == run
        writer.start()
        got = list(events_of(stream))
    writer.join()
    assert seqs(got) == list(range(1, 9))
    assert [e.event for e in got] == ["run.started"] + ["tool_call"] * 6 + ["run.completed"]
    frame = got[4].json()
    assert frame["seq"] == 5 and frame["type"] == "tool_call" and frame["run_id"] == run
    assert frame["op"] == "contact.create" and frame["args"] == {"display_name": "l0"}
    assert frame["result"]["display_name"] == "l0" and frame["latency_ms"] >= 0
    assert {"ts", "action_id", "dry_run", "replayed"} <= set(frame)


def test_the_events_alias_streams_the_same(http):
    run = new_run(http)
    http.post("/v1/run.close", json={"id": run})
    a = read_all(http, f"/v1/runs/{run}/stream")
    b = read_all(http, f"/v1/runs/{run}/events")
    assert [(e.id, e.event, e.data) for e in a] == [(e.id, e.event, e.data) for e in b]
    assert [e.event for e in a] == ["run.started", "run.completed"]


def test_the_stream_opens_with_a_retry_hint_and_a_comment_and_keeps_alive(
    http, monkeypatch, engine, account
):
    shorter = dataclasses.replace(engine.settings, sse_keepalive_seconds=0.2)
    monkeypatch.setattr(engine, "settings", shorter)
    run = new_run(http)
    lines: list[str] = []
    with http.stream("GET", f"/v1/runs/{run}/stream") as response:
        started = time.monotonic()
        for line in response.iter_lines():
            lines.append(line)
            if lines.count(": keepalive") >= 3:
                break
            assert time.monotonic() - started < 20, lines
    assert lines[0].startswith("retry: ") and ": connected" in lines
    assert lines.count(": keepalive") == 3
    assert "event: run.started" in lines
    # ": live" says the history is out and the stream now waits for new events.
    assert lines.index(": connected") < lines.index("event: run.started") < lines.index(": live")
    assert lines.index(": live") < lines.index(": keepalive") and lines.count(": live") == 1


def test_a_finished_run_s_stream_never_says_live(http):
    run = new_run(http)
    http.post("/v1/run.close", json={"id": run})
    with http.stream("GET", f"/v1/runs/{run}/stream") as response:
        lines = list(response.iter_lines())
    assert "event: run.completed" in lines and ": live" not in lines


# -- resume ------------------------------------------------------------------------------------------


def test_resume_from_last_event_id_or_after_seq(http, engine, account):
    run = new_run(http)
    write(engine, account, run, 9)  # seqs 2..10
    http.post("/v1/run.close", json={"id": run})  # 11
    assert seqs(read_all(http, f"/v1/runs/{run}/stream", headers={"Last-Event-ID": "4"})) == list(
        range(5, 12)
    )
    assert seqs(read_all(http, f"/v1/runs/{run}/stream", params={"after_seq": 7})) == [
        8,
        9,
        10,
        11,
    ]
    both = read_all(
        http, f"/v1/runs/{run}/stream", params={"after_seq": 2}, headers={"Last-Event-ID": "9"}
    )
    assert seqs(both) == [10, 11]  # the reconnecting browser's header wins
    assert read_all(http, f"/v1/runs/{run}/stream", params={"after_seq": 11}) == []


@pytest.mark.parametrize("bad", ["-1", "x", "1.5", "9" * 30])
def test_bad_cursors_are_invalid_argument(http, bad):
    run = new_run(http)
    for kwargs in ({"headers": {"Last-Event-ID": bad}}, {"params": {"after_seq": bad}}):
        response = http.get(f"/v1/runs/{run}/stream", **kwargs)
        assert response.status_code == 400
        assert response.json()["error"]["code"] == "invalid_argument"


def test_seam_events_written_while_the_client_reads_history(http, engine, account):
    """Events land while the stream is still sending history: none lost, none twice."""
    run = new_run(http)
    write(engine, account, run, 1499)  # history spans several pages
    got: list[ServerSentEvent] = []
    with connect_sse(http, "GET", f"/v1/runs/{run}/stream") as stream:
        it = events_of(stream)
        got.extend(next(it) for _ in range(5))
        writer = threading.Thread(
            target=lambda: (
                write(engine, account, run, 600, batch=7),
                http.post("/v1/run.close", json={"id": run}),
            )
        )
        writer.start()
        for event in it:
            got.append(event)
            if len(got) in (700, 1400):
                time.sleep(0.05)  # let the writer land more between pages
        writer.join()
    assert seqs(got) == list(range(1, 1500 + 600 + 2))
    assert got[-1].event == "run.completed"


def test_resume_soak_200_random_disconnects_in_a_5000_event_run(http, engine, account):
    """A client drops the connection at 200 random points while the run is being written, and
    resumes each time from the last id it got: it receives exactly 1..5000."""
    run = new_run(http)

    def writer() -> None:
        for _ in range(4998 // 17):
            write(engine, account, run, 17, batch=17)
            time.sleep(0.002)
        write(engine, account, run, 4998 % 17)
        http.post("/v1/run.close", json={"id": run})  # seq 5000

    rng = random.Random(5000)
    thread = threading.Thread(target=writer)
    thread.start()
    got: list[int] = []
    last = 0
    for drop in range(201):
        take = rng.randint(1, 40) if drop < 200 else None
        headers = {"Last-Event-ID": str(last)} if last else {}
        with connect_sse(http, "GET", f"/v1/runs/{run}/stream", headers=headers) as stream:
            for n, event in enumerate(events_of(stream), 1):
                got.append(int(event.id))
                last = int(event.id)
                if take is not None and n >= take:
                    break
    thread.join()
    assert got == list(range(1, 5001))


# -- slow consumers ----------------------------------------------------------------------------------


def test_a_slow_consumer_is_cut_off_without_stalling_writers(
    http, engine, account, monkeypatch, live
):
    monkeypatch.setattr(engine, "settings", dataclasses.replace(engine.settings, sse_queue=8))
    run = new_run(http)
    hub = hub_for(engine.store.engine)
    pad = "x" * 4096
    got: list[int] = []
    with http.stream("GET", f"/v1/runs/{run}/stream") as response:
        lines = response.iter_lines()
        for line in lines:  # read until the first event, then stop reading
            if line.startswith("id: "):
                got.append(int(line[4:]))
                break
        deadline = time.monotonic() + 30
        write(engine, account, run, 3000, batch=50, pad=pad)  # 12 MB: more than sockets buffer
        # The writer finished although the reader reads nothing; the hub dropped the reader.
        while hub.subscribers and time.monotonic() < deadline:
            time.sleep(0.05)
        assert hub.subscribers == 0
        for line in lines:  # the stream ends (before the run does) once the reader catches up
            if line.startswith("id: "):
                got.append(int(line[4:]))
    assert got == list(range(1, len(got) + 1)) and len(got) < 3001
    http.post("/v1/run.close", json={"id": run})
    rest = read_all(http, f"/v1/runs/{run}/stream", headers={"Last-Event-ID": str(got[-1])})
    assert got + seqs(rest) == list(range(1, 3003))


# -- the firehose ------------------------------------------------------------------------------------


def test_firehose_streams_every_run_with_filters_and_a_global_cursor(http, engine, account):
    ok_key = http.post("/v1/api_key.create", json={"name": "f", "agent_id": "agent_hose"}).json()
    other = {"Authorization": f"Bearer {ok_key['secret']}"}
    a = new_run(http, "a")
    b = http.post("/v1/run.create", json={"name": "b"}, headers=other).json()["id"]
    http.post("/v1/contact.create", json={"display_name": "fa"}, headers={"X-Krabs-Run": a})
    http.post("/v1/contact.list", json={}, headers={**other, "X-Krabs-Run": b})

    def collect(params: dict[str, Any], want: int, headers: dict[str, str] | None = None) -> list:
        out = []
        with connect_sse(http, "GET", "/v1/runs/stream", params=params, headers=headers or {}) as s:
            for event in events_of(s):
                out.append(event)
                if len(out) == want:
                    break
        return out

    hose = collect({"after_id": 0, "agent": "agent_hose"}, 4)
    ids = [int(e.id) for e in hose]
    assert ids == sorted(ids) and len(set(ids)) == 4
    default = next(e.json()["run_id"] for e in hose if e.json()["run_id"] != b)
    assert {(e.json()["run_id"], e.event) for e in hose} == {
        (b, "run.started"),
        (b, "tool_call"),
        (default, "run.started"),
        (default, "tool_call"),  # its run.create call
    }
    ops = collect({"after_id": 0, "op": "contact.create"}, 1)
    assert ops[0].json()["args"] == {"display_name": "fa"} and ops[0].json()["run_id"] == a
    # Live, resumed after the last id seen: only what comes next.
    last = max(ids)

    def later() -> None:
        time.sleep(0.3)
        http.post("/v1/contact.list", json={}, headers={**other, "X-Krabs-Run": b})

    threading.Thread(target=later).start()
    live = collect({"agent": "agent_hose"}, 1, headers={"Last-Event-ID": str(last)})
    assert int(live[0].id) > last and live[0].json()["op"] == "contact.list"


def test_firehose_never_serves_past_a_lower_id_still_in_flight(http, engine, account):
    """On PostgreSQL ids are taken in order but transactions commit in any order: the firehose
    holds a committed event back while a lower id is in flight, so order and resume stay whole."""
    if engine.store.is_sqlite:
        pytest.skip("SQLite serializes writers: commit order is id order")
    slow_run, fast_run = new_run(http, "slow"), new_run(http, "fast")
    hub = hub_for(engine.store.engine)

    def append(conn: Any, run_id: str) -> int:
        ident, _ = append_event(
            conn, account_id=account.account_id, run_id=run_id, type="span", data={"n": run_id}
        )
        return ident

    slow = engine.store.engine.connect()
    slow_tx = slow.begin()
    low = append(slow, slow_run)  # taken first, committed last
    with engine.store.transaction() as conn:
        high = append(conn, fast_run)
        fast_events = take_pending(conn)
    hub.publish(fast_events)
    assert high > low

    def commit_slow() -> None:
        time.sleep(0.5)
        slow_tx.commit()
        hub.publish(take_pending(slow))
        slow.close()

    got: list[int] = []
    committer = threading.Thread(target=commit_slow)
    params = {"after_id": low - 1}
    with connect_sse(http, "GET", "/v1/runs/stream", params=params) as stream:
        committer.start()
        for event in events_of(stream):
            if event.data:
                got.append(int(event.id))
            if len(got) == 2:
                break
    committer.join(10)
    assert got == [low, high]
    # Resuming after the last id gets nothing of those again.
    with engine.store.transaction() as conn:
        after = append(conn, fast_run)
        hub.publish(take_pending(conn))
    with connect_sse(http, "GET", "/v1/runs/stream", headers={"Last-Event-ID": str(high)}) as s:
        first = next(e for e in events_of(s) if e.data)
    assert int(first.id) == after


def test_another_accounts_transaction_in_flight_does_not_hold_a_firehose_back(
    http, engine, account
):
    """The horizon that keeps a firehose whole counts only the writers of its own account: a long
    transaction of another account holding a lower id does not stall it (it stalls the global
    horizon, which no stream uses)."""
    if engine.store.is_sqlite:
        pytest.skip("SQLite serializes writers: commit order is id order")
    from krabs.runs.events import settled_horizon

    busy = create_account(engine.store, "busy neighbour")
    with engine.store.transaction() as conn:
        theirs = insert_run(conn, account_id=busy.account_id, agent_id="agent_x", name="long")
    mine = new_run(http, "mine")
    slow = engine.store.engine.connect()
    slow_tx = slow.begin()
    try:
        low, _ = append_event(
            slow, account_id=busy.account_id, run_id=theirs, type="span", data={"n": 1}
        )
        with engine.store.transaction() as conn:
            high, _ = append_event(
                conn, account_id=account.account_id, run_id=mine, type="span", data={"n": 2}
            )
            events = take_pending(conn)
        hub_for(engine.store.engine).publish(events)
        assert low < high
        got: list[int] = []

        def read() -> None:
            params = {"after_id": high - 1}
            with connect_sse(http, "GET", "/v1/runs/stream", params=params) as stream:
                got.append(int(next(e for e in events_of(stream) if e.data).id))

        reader = threading.Thread(target=read, daemon=True)
        reader.start()
        reader.join(5)  # bounded: without the account's own horizon it waits for their commit
        assert got == [high], "the firehose waited for another account's transaction"
        with engine.store.connect(write=False) as conn:
            assert settled_horizon(conn) < high <= settled_horizon(conn, account.account_id)
    finally:
        slow_tx.commit()
        slow.close()


# -- auth and aliases -------------------------------------------------------------------------------


def test_streams_need_a_key_of_the_runs_account(http, live, engine):
    run = new_run(http)
    for path in (f"/v1/runs/{run}/stream", "/v1/runs/stream"):
        anon = httpx.get(live.url + path, timeout=10)
        assert anon.status_code == 401 and anon.json()["error"]["code"] == "unauthenticated"
    other = create_account(engine.store, "other")
    response = httpx.get(
        f"{live.url}/v1/runs/{run}/stream",
        headers={"Authorization": f"Bearer {other.secret}"},
        timeout=10,
    )
    assert response.status_code == 404 and response.json()["error"]["code"] == "not_found"
    assert http.get("/v1/runs/run_01HG7Z4X9Q8M2N7P3R5T6V8W/stream").status_code == 404
    assert http.get("/v1/runs/" + "r" * 500 + "/stream").status_code == 404


def test_rest_aliases_are_the_run_operations(http):
    run = new_run(http, "alias")
    got = http.get(f"/v1/runs/{run}")
    assert got.status_code == 200 and got.json()["id"] == run and got.json()["name"] == "alias"
    assert got.headers["x-krabs-run"]  # a call like any other, in the caller's run
    listed = http.get("/v1/runs", params={"limit": "2", "status": "open"}).json()
    assert listed["object"] == "list" and len(listed["data"]) <= 2
    assert http.get("/v1/runs", params={"status": "nope"}).status_code == 400
    assert http.get("/v1/runs/run_01HG7Z4X9Q8M2N7P3R5T6V8W").status_code == 404
    span = {"node_name": "plan", "span_kind": "LLM", "input_tokens": 3}
    posted = http.post(f"/v1/runs/{run}/spans", json={"spans": [span]})
    assert posted.status_code == 201 and posted.json()["uploaded"] == 1
    spans = http.get(f"/v1/runs/{run}/spans").json()
    assert spans["total"] == 1 and spans["data"][0]["node_name"] == "plan"
    assert http.post(f"/v1/runs/{run}/spans", content=b"[").status_code == 400
    cancelled = http.post(f"/v1/runs/{run}:cancel")
    assert cancelled.status_code == 200
    assert cancelled.json()["ok"] is True and cancelled.json()["status"] == "cancelled"
    again = http.post(f"/v1/runs/{run}:cancel")
    assert again.status_code == 409 and again.json()["error"]["code"] == "run_cancelled"
    refused = http.post("/v1/contact.list", json={}, headers={"X-Krabs-Run": run})
    assert refused.status_code == 409 and refused.json()["error"]["code"] == "run_cancelled"
    frames = read_all(http, f"/v1/runs/{run}/stream")
    assert frames[-1].event == "run.cancelled"
    assert json.loads(frames[1].data)["span_id"].startswith("sp_")


def test_a_run_created_directly_streams_its_started_event(http, engine, account):
    with engine.store.transaction() as conn:
        run = insert_run(conn, account_id=account.account_id, agent_id="agent_x", name="bare")
    write(engine, account, run, 2)
    http.post("/v1/run.close", json={"id": run})
    assert [e.event for e in read_all(http, f"/v1/runs/{run}/stream")] == [
        "run.started",
        "span",
        "span",
        "run.completed",
    ]


def test_stream_run_and_span_knobs_are_settings(monkeypatch):
    from krabs.config import Settings

    monkeypatch.setenv("KRABS_SSE_KEEPALIVE_SECONDS", "2.5")
    monkeypatch.setenv("KRABS_SSE_QUEUE", "64")
    monkeypatch.setenv("KRABS_RUN_IDLE_SECONDS", "600")
    monkeypatch.setenv("KRABS_RUN_SWEEP_SECONDS", "30")
    monkeypatch.setenv("KRABS_SPANS_PER_MINUTE", "120")
    monkeypatch.setenv("KRABS_APPROVAL_WAIT_MAX_SECONDS", "5")
    s = Settings.from_env()
    assert (s.sse_keepalive_seconds, s.sse_queue) == (2.5, 64)
    assert (s.run_idle_seconds, s.run_sweep_seconds) == (600, 30.0)
    assert (s.spans_per_minute, s.approval_wait_max_seconds) == (120.0, 5.0)
    assert sse.StreamOptions.of(s) == sse.StreamOptions(keepalive=2.5, queue_size=64)
