"""Replay: a run's recorded calls re-executed as dry-runs against today's state, compared call by call
(`same`, `differs` with a diff, `would_fail` with the error); nothing is written."""

from __future__ import annotations

import json
from typing import Any

import pytest

from conftest import Caller, err, ok, snapshot
from krabs.accounts import create_account
from krabs.engine import Engine
from krabs.runs.attach import insert_run
from krabs.runs.replay import json_diff, normalize


def _run(engine: Engine, account: Any, name: str = "replayed") -> str:
    with engine.store.transaction() as conn:
        return insert_run(conn, account_id=account.account_id, agent_id="agent_default", name=name)


def _by_op(items: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {i["op"]: i for i in items}


@pytest.fixture
def recorded(call: Caller, engine: Engine, account: Any) -> dict[str, Any]:
    run_id = _run(engine, account)
    ada = ok(
        call(
            "contact.create",
            {"display_name": "Ada", "identities": [{"kind": "email", "value": "ada@lovelace.dev"}]},
            run=run_id,
        )
    )
    ok(call("contact.get", {"id": ada["id"]}, run=run_id))
    ok(call("contact.update", {"id": ada["id"], "title": "Countess"}, run=run_id))
    err(call("contact.get", {"id": "ct_01HG7Z4X9Q8M2N7P3R5T6V8W"}, run=run_id), "not_found")
    ok(call("tag.create", {"name": "vip", "dry_run": True}, run=run_id))
    return {"run": run_id, "ada": ada["id"]}


def test_replay_reports_per_call_and_writes_nothing(
    call: Caller, engine: Engine, account: Any, recorded: dict[str, Any]
) -> None:
    before = snapshot(engine.store, account.account_id)
    out = ok(call("run.replay", {"id": recorded["run"]}))
    after = snapshot(engine.store, account.account_id)
    # Only bookkeeping of the replay call itself (its own tool_call event) may land.
    changed = {t for t in before if before[t] != after[t]}
    assert changed <= {"run_events", "runs", "api_keys"}
    items = out["items"]
    assert [i["seq"] for i in items] == sorted(i["seq"] for i in items)
    assert [i["op"] for i in items] == [
        "contact.create",
        "contact.get",
        "contact.update",
        "contact.get",
        "tag.create",
    ]
    create, get, update, missing, dry = items
    # The identity now belongs to Ada: creating her again would conflict.
    assert create["status"] == "would_fail" and create["error"]["code"] == "conflict"
    # Reading Ada today: her title changed since the recorded read.
    assert get["status"] == "differs"
    assert {"path": "title", "before": None, "after": "Countess"} in get["diff"]
    # Setting the same title again answers the same, but would no longer change any row.
    assert update["status"] == "differs"
    assert update["diff"] == [{"path": "touched", "before": ["contacts:update"], "after": []}]
    assert missing["status"] == "same" and missing["error"]["code"] == "not_found"
    assert dry["status"] == "skipped"
    assert out["summary"] == {"calls": 5, "same": 1, "differs": 2, "would_fail": 1, "skipped": 1}
    assert out["has_more"] is False and out["next_after_seq"] is None


def test_replay_after_a_delete_would_fail(call: Caller, recorded: dict[str, Any]) -> None:
    ok(call("contact.delete", {"id": recorded["ada"]}))
    items = ok(call("run.replay", {"id": recorded["run"]}))["items"]
    get = items[1]
    assert get["op"] == "contact.get" and get["status"] == "would_fail"
    assert get["error"]["code"] == "not_found"
    # With Ada gone, creating her again works and touches the same kinds of rows.
    assert items[0]["status"] == "same"


def test_pages_with_after_seq(call: Caller, recorded: dict[str, Any]) -> None:
    first = ok(call("run.replay", {"id": recorded["run"], "limit": 2}))
    assert len(first["items"]) == 2 and first["has_more"] is True
    rest = ok(call("run.replay", {"id": recorded["run"], "after_seq": first["next_after_seq"]}))
    assert rest["items"][0]["op"] == "contact.update"
    assert first["summary"]["calls"] + rest["summary"]["calls"] == 5


def test_forbidden_calls_would_fail_for_a_read_only_replayer(
    call: Caller, recorded: dict[str, Any]
) -> None:
    reader = ok(call("api_key.create", {"name": "r", "scopes": ["read"]}))["secret"]
    items = ok(call("run.replay", {"id": recorded["run"]}, key=reader))["items"]
    assert _by_op(items)["contact.update"]["error"]["code"] == "forbidden"


def test_normalize_and_diff() -> None:
    a = {"id": "ct_01HG7Z4X9Q8M2N7P3R5T6V8W", "at": "2026-05-16T14:22:08.000000Z", "n": [1, 2]}
    b = {"id": "ct_01HG7Z4X9Q8M2N7P3R5T6V8X", "at": "2027-01-01T00:00:00.000000Z", "n": [1, 3]}
    assert normalize(a)["id"] == "<id:ct>" and normalize(a)["at"] == "<timestamp>"
    assert json_diff(normalize(a), normalize(b)) == [{"path": "n[1]", "before": 2, "after": 3}]
    assert json_diff({"x": 1}, {"y": 1}) == [
        {"path": "x", "before": 1},
        {"path": "y", "after": 1},
    ]


@pytest.mark.parametrize(
    ("args", "param"),
    [
        ({}, "id"),
        ({"id": "ct_01HG7Z4X9Q8M2N7P3R5T6V8W"}, "id"),
        ({"id": "run_X", "limit": 0}, "limit"),
        ({"id": "run_X", "limit": 5000}, "limit"),
        ({"id": "run_X", "after_seq": -1}, "after_seq"),
        ({"id": "run_X", "after_seq": "1; drop"}, "after_seq"),
        ({"id": "run_X", "extra": True}, "extra"),
        ({"id": "run_" + "X" * 10_000}, "id"),
    ],
)
def test_hostile_input(call: Caller, args: dict[str, Any], param: str) -> None:
    assert err(call("run.replay", args), "invalid_argument")["param"] == param


def test_missing_and_foreign_runs_are_not_found(
    call: Caller, engine: Engine, recorded: dict[str, Any]
) -> None:
    err(call("run.replay", {"id": "run_01HG7Z4X9Q8M2N7P3R5T6V8W"}), "not_found")
    other = create_account(engine.store, "other")
    err(call("run.replay", {"id": recorded["run"]}, key=other.secret), "not_found")


# -- krabs runs replay ------------------------------------------------------------------------------


def _cli(live: Any, account: Any, *argv: str) -> Any:
    from click.testing import CliRunner

    from krabs.cli import cli

    env = {"KRABS_URL": live.url, "KRABS_API_KEY": account.secret, "KRABS_RUN_ID": None}
    return CliRunner().invoke(cli, ["runs", "replay", *argv], env=env)


def test_cli_dry_run_exit_codes_and_json_lines(
    call: Caller, engine: Engine, account: Any, live: Any
) -> None:
    run_id = _run(engine, account)
    tag = ok(call("tag.create", {"name": "stable"}, run=run_id))
    ok(call("tag.list", {"limit": 5}, run=run_id))
    before = snapshot(engine.store, account.account_id)
    same = _cli(live, account, run_id, "--dry-run")
    # tag.create would now conflict with the tag it made: a difference, exit 2.
    assert same.exit_code == 2, same.stdout + same.stderr
    assert "tag.create" in same.stdout and "would_fail" in same.stdout
    lines = [
        json.loads(x)
        for x in _cli(live, account, run_id, "--dry-run", "--json").stdout.splitlines()
    ]
    assert [x.get("status") for x in lines[:-1]] == ["would_fail", "same"]
    assert lines[-1]["summary"]["would_fail"] == 1
    after = snapshot(engine.store, account.account_id)
    assert {t for t in before if before[t] != after[t]} <= {"run_events", "runs", "api_keys"}
    ok(call("tag.delete", {"id": tag["id"]}))
    reads_only = _run(engine, account, "reads")
    ok(call("tag.list", {"limit": 5}, run=reads_only))
    clean = _cli(live, account, reads_only, "--dry-run")
    assert clean.exit_code == 0, clean.stdout
    missing = _cli(live, account, "run_01HG7Z4X9Q8M2N7P3R5T6V8W", "--dry-run")
    assert missing.exit_code == 1 and "not_found" in missing.stderr


def test_cli_real_replay_is_a_new_run_and_safe_to_retry(
    call: Caller, engine: Engine, account: Any, live: Any
) -> None:
    run_id = _run(engine, account)
    made = ok(call("tag.create", {"name": "again"}, run=run_id))
    ok(call("tag.delete", {"id": made["id"]}, run=run_id))
    first = _cli(live, account, run_id, "--json")
    assert first.exit_code == 0, first.stdout + first.stderr
    items = [json.loads(x) for x in first.stdout.splitlines()]
    summary = items.pop()["summary"]
    assert summary["executed"] == 2 and summary["run_id"] != run_id
    assert items[0]["result"]["name"] == "again" and items[0]["result"]["id"] != made["id"]
    # Running the same replay again applies nothing twice: each call replays its stored answer.
    second = [json.loads(x) for x in _cli(live, account, run_id, "--json").stdout.splitlines()]
    assert second[0]["result"]["id"] == items[0]["result"]["id"]
    tags = ok(call("tag.list", {"limit": 100}))["data"]
    assert [t["name"] for t in tags].count("again") == 0
    events = ok(call("run.list_events", {"run_id": summary["run_id"], "type": "tool_call"}))
    assert [e["op"] for e in events["data"]][:2] == ["tag.create", "tag.delete"]
    assert all(e["data"]["replayed"] for e in events["data"][2:])  # the retry wrote nothing


def test_real_replay_does_not_undo_again(
    call: Caller, engine: Engine, account: Any, live: Any
) -> None:
    undone = _run(engine, account, "undone")
    tag = ok(call("tag.create", {"name": "comes back"}, run=undone))
    undoer = _run(engine, account, "undoer")
    reverted = ok(call("run.undo", {"id": undone}, run=undoer))
    assert not [t for t in ok(call("tag.list", {"limit": 100}))["data"] if t["id"] == tag["id"]]
    ok(call("action.undo", {"undo_token": reverted["undo_token"]}))  # the tag is back
    # A dry replay reports what the undo would do today and keeps nothing.
    before = snapshot(engine.store, account.account_id)
    dry = ok(call("run.replay", {"id": undoer}))
    assert [i["op"] for i in dry["items"]] == ["run.undo"]
    after = snapshot(engine.store, account.account_id)
    assert {t for t in before if before[t] != after[t]} <= {"run_events", "runs", "api_keys"}
    # A real replay skips it, saying why, and the tag stays.
    result = _cli(live, account, undoer, "--json")
    assert result.exit_code == 0, result.stdout + result.stderr
    items = [json.loads(x) for x in result.stdout.splitlines()]
    summary = items.pop()["summary"]
    assert summary["skipped"] == 1 and summary["executed"] == 0
    assert items[0]["op"] == "run.undo" and items[0]["status"] == "skipped"
    assert "not executed again" in items[0]["reason"]
    assert [t for t in ok(call("tag.list", {"limit": 100}))["data"] if t["id"] == tag["id"]]
