"""``krabs runs create`` prints the seed's block; ``krabs runs tail`` prints the seed's lines
(``14:22:31.418 contact.upsert 42ms ✓``, ``✕ <code>`` on errors) from the backlog (--since) and live
(--follow, over SSE against a server; polling embedded)."""

from __future__ import annotations

import json
import os
import queue
import re
import subprocess
import sys
import threading
import time
from typing import Any

import pytest
from click.testing import CliRunner, Result

from conftest import Caller, ok
from krabs.cli import cli
from krabs.runs.hub import hub_for
from krabs.transports.cli_runs import event_line, since_to_ts

LINE = re.compile(r"^\d\d:\d\d:\d\d\.\d{3} (?P<op>[a-z_.]+) \d+ms (?P<mark>✓|✕ [a-z_]+)$")


def krabs(env: dict[str, Any], *argv: str) -> Result:
    base = {"KRABS_RUN_ID": None, "KRABS_OUTPUT": None, "KRABS_BOOTSTRAP_KEY": None}
    return CliRunner().invoke(cli, list(argv), env={**base, **env})


@pytest.fixture
def remote(live: Any, account: Any) -> dict[str, Any]:
    return {"KRABS_URL": live.url, "KRABS_API_KEY": account.secret}


@pytest.fixture
def embedded(tmp_path: Any) -> dict[str, Any]:
    return {"KRABS_URL": None, "KRABS_API_KEY": None, "KRABS_DATA_DIR": str(tmp_path / "data")}


def _block(result: Result) -> dict[str, str]:
    assert result.exit_code == 0, (result.stdout, result.stderr)
    return dict(line.split(": ", 1) for line in result.stdout.strip().splitlines())


def test_runs_create_prints_the_seeds_block(
    remote: dict[str, Any], embedded: dict[str, Any]
) -> None:
    for env in (remote, embedded):
        argv = ("runs", "create", "--agent", "agent_drafts", "--name", "Q3 outreach pass")
        block = _block(krabs(env, *argv))
        assert list(block) == ["run_id", "agent", "name", "created", "status"]
        assert block["run_id"].startswith("run_") and block["agent"] == "agent_drafts"
        assert block["name"] == "Q3 outreach pass" and block["status"] == "open"
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", block["created"])
    data = json.loads(krabs(remote, "runs", "create", "--name", "j", "--json").stdout)
    assert data["object"] == "run"


def _calls_in(call: Caller, run_id: str) -> None:
    ok(call("contact.create", {"display_name": "Ada"}, run=run_id))
    ok(call("contact.list", {"limit": 1}, run=run_id))
    call("task.create", {"title": "t", "contact_id": "ct_01HG7Z4X9Q8M2N7P3R5T6V8W"}, run=run_id)


def test_tail_prints_the_backlog_as_seed_lines(call: Caller, remote: dict[str, Any]) -> None:
    run_id = ok(call("run.create", {"name": "tailed"}))["id"]
    _calls_in(call, run_id)
    result = krabs(remote, "runs", "tail", "--run", run_id, "--since", "5m")
    assert result.exit_code == 0, result.stderr
    lines = [m for m in (LINE.match(x) for x in result.stdout.splitlines()) if m]
    assert [(m["op"], m["mark"]) for m in lines] == [
        ("contact.create", "✓"),
        ("contact.list", "✓"),
        ("task.create", "✕ not_found"),
    ]
    assert "\x1b[" not in result.stdout  # no colour when stdout is not a terminal
    as_json = krabs(remote, "runs", "tail", "--run", run_id, "--since", "5m", "--json")
    events = [json.loads(x) for x in as_json.stdout.splitlines()]
    assert events[0]["type"] == "run.started"
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1))


def test_tail_follow_streams_live_calls_until_the_run_ends(
    call: Caller, remote: dict[str, Any], engine: Any
) -> None:
    run_id = ok(call("run.create", {"name": "live"}))["id"]
    ok(call("contact.list", {"limit": 1}, run=run_id))  # before tail attaches: not printed

    hub = hub_for(engine.store.engine)
    watching = hub.subscribers

    def later() -> None:
        deadline = time.monotonic() + 20
        while hub.subscribers <= watching and time.monotonic() < deadline:
            time.sleep(0.05)  # until the tail's stream is attached
        ok(call("contact.create", {"display_name": "Live"}, run=run_id))
        ok(call("run.close", {"id": run_id}))

    worker = threading.Thread(target=later)
    worker.start()
    result = krabs(remote, "runs", "tail", "--run", run_id, "--follow")
    worker.join()
    assert result.exit_code == 0, result.stderr
    ops = [m["op"] for m in (LINE.match(x) for x in result.stdout.splitlines()) if m]
    assert ops == ["contact.create"]
    assert "run.completed" in result.stdout


def test_tail_follows_an_agents_firehose(call: Caller, remote: dict[str, Any]) -> None:
    """A real ``krabs runs tail --agent X --follow --since 5m`` process: the backlog, then calls as
    they land over the SSE firehose, other agents' calls left out."""
    key = ok(call("api_key.create", {"name": "d", "agent_id": "agent_tail", "scopes": ["write"]}))
    ok(call("contact.create", {"display_name": "Before"}, key=key["secret"]))
    ok(call("contact.list", {}))  # another agent: filtered out
    env = {**os.environ, **remote}
    env.pop("KRABS_RUN_ID", None)
    argv = [sys.executable, "-m", "krabs", "runs", "tail", "--agent", "agent_tail", "--follow"]
    proc = subprocess.Popen(
        [*argv, "--since", "5m"], env=env, stdout=subprocess.PIPE, text=True, bufsize=1
    )
    lines: queue.Queue[str] = queue.Queue()
    threading.Thread(target=lambda: [lines.put(x) for x in proc.stdout or ()], daemon=True).start()
    seen: list[str] = []

    def until(pattern: str) -> None:
        deadline = time.monotonic() + 30
        while not any(pattern in x for x in seen):
            assert time.monotonic() < deadline, seen
            try:
                seen.append(lines.get(timeout=0.5).rstrip("\n"))
            except queue.Empty:
                continue

    try:
        until("contact.create")
        err_call = call("contact.get", {"id": "ct_01HG7Z4X9Q8M2N7P3R5T6V8W"}, key=key["secret"])
        assert err_call.error is not None
        ok(call("tag.list", {}))  # another agent again
        until("contact.get")
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    marks = [(m["op"], m["mark"]) for m in (LINE.match(x) for x in seen) if m]
    assert marks == [("contact.create", "✓"), ("contact.get", "✕ not_found")], seen


def test_tail_embedded_backlog(embedded: dict[str, Any]) -> None:
    assert krabs(embedded, "contact", "create", "--display-name", "Ada").exit_code == 0
    assert krabs(embedded, "contact", "get", "--id", "ct_01HG7Z4X9Q8M2N7P3R5T6V8W").exit_code == 3
    result = krabs(embedded, "runs", "tail", "--since", "1h")
    assert result.exit_code == 0, result.stderr
    marks = [(m["op"], m["mark"]) for m in (LINE.match(x) for x in result.stdout.splitlines()) if m]
    assert ("contact.create", "✓") in marks and ("contact.get", "✕ not_found") in marks


def test_tail_refuses_bad_input(remote: dict[str, Any]) -> None:
    bad = krabs(remote, "runs", "tail", "--since", "yesterday-ish")
    assert bad.exit_code == 2 and "--since" in bad.stderr
    missing = krabs(remote, "runs", "tail", "--run", "run_01HG7Z4X9Q8M2N7P3R5T6V8W")
    assert missing.exit_code == 3 and "not_found" in missing.stderr
    hostile = krabs(remote, "runs", "tail", "--run", "run_" + "x" * 5000)
    assert hostile.exit_code == 2 and "invalid_argument" in hostile.stderr
    assert krabs(remote, "runs", "create").exit_code == 2  # --name is required


def test_event_line_format() -> None:
    ok_line = event_line(
        {
            "type": "tool_call",
            "ts": "2026-05-16T14:22:31.418000Z",
            "data": {"op": "contact.upsert", "latency_ms": 42.4, "result": {}},
        }
    )
    assert click_plain(ok_line) == "14:22:31.418 contact.upsert 42ms ✓"
    failed = event_line(
        {
            "type": "tool_call",
            "ts": "2026-05-16T14:22:33.504000Z",
            "data": {"op": "task.assign", "latency_ms": 22, "error": {"code": "invalid_assignee"}},
        }
    )
    assert click_plain(failed) == "14:22:33.504 task.assign 22ms ✕ invalid_assignee"
    assert since_to_ts("5m") < since_to_ts("0s")
    assert since_to_ts("2026-05-16T14:22:08Z") == "2026-05-16T14:22:08.000000Z"


def click_plain(text: str) -> str:
    import click

    return click.unstyle(text)
