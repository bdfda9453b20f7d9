"""Runs and their events: every call is a `tool_call` event of its run (a write's in its own
transaction), the run lifecycle operations, spans, stats and idle expiry."""

from __future__ import annotations

import dataclasses
import json
from typing import Any

import pytest
import sqlalchemy as sa

from conftest import err, ok
from krabs.accounts import create_account
from krabs.engine.uow import utcnow
from krabs.ops import span as span_ops
from krabs.ratelimit import RateLimiter
from krabs.runs.attach import insert_run
from krabs.runs.events import append_event, read_events, take_pending
from krabs.runs.lifecycle import expire_idle
from krabs.store.tables import audit_actions, contacts, run_events, runs


def events(engine, account, run_id: str) -> list[dict[str, Any]]:
    with engine.store.connect(write=False) as conn:
        return [e.as_dict() for e in read_events(conn, account.account_id, run_id, 0, 100_000)]


def tool_calls(engine, account, run_id: str) -> list[dict[str, Any]]:
    return [e for e in events(engine, account, run_id) if e["type"] == "tool_call"]


def new_run(call) -> str:
    return str(ok(call("run.create", {"name": "test run"}))["id"])


# -- tool_call events --------------------------------------------------------------------------------


def test_every_call_is_a_tool_call_event_after_run_started(call, engine, account):
    run = new_run(call)
    created = ok(call("contact.create", {"display_name": "Ada"}, run=run))
    ok(call("contact.get", {"id": created["id"]}, run=run))
    err(call("contact.get", {"id": "ct_01HG7Z4X9Q8M2N7P3R5T6V8W"}, run=run), "not_found")
    err(call("contact.create", {"display_name": 5}, run=run), "invalid_argument")
    ok(call("contact.update", {"id": created["id"], "title": "CEO", "dry_run": True}, run=run))
    log = events(engine, account, run)
    assert [e["seq"] for e in log] == list(range(1, len(log) + 1))  # gap-free
    assert log[0]["type"] == "run.started" and log[0]["name"] == "test run"
    ops = [(e["op"], "error" in e, e["dry_run"]) for e in log[1:]]
    assert ops == [
        ("contact.create", False, False),
        ("contact.get", False, False),
        ("contact.get", True, False),
        ("contact.create", True, False),
        ("contact.update", False, True),
    ]
    first = log[1]
    assert first["args"] == {"display_name": "Ada"} and first["result"]["id"] == created["id"]
    assert first["action_id"].startswith("act_") and first["latency_ms"] >= 0
    assert {"ts", "seq", "replayed"} <= set(first)
    assert log[4]["error"] == {
        "code": "invalid_argument",
        "message": log[4]["error"]["message"],
        "param": "display_name",
    }
    assert log[5]["args"] == {
        "id": created["id"],
        "title": "CEO",
    }  # dry_run is the flag, not an arg
    assert log[5]["action_id"] is None


def test_a_run_without_calls_named_gets_the_default_run_and_its_started_event(
    call, engine, account
):
    outcome = call("contact.list", {})
    log = events(engine, account, outcome.run_id)
    assert [e["type"] for e in log][:2] == ["run.started", "tool_call"]
    assert log[0]["name"] == "default"


def test_a_committed_write_always_has_its_event_in_the_same_transaction(call, engine, account):
    run = new_run(call)
    ids = [ok(call("contact.create", {"display_name": f"c{i}"}, run=run))["id"] for i in range(5)]
    ok(call("contact.delete", {"id": ids[0]}, run=run))
    ok(call("tag.create", {"name": f"t-{run}"}, run=run))
    with engine.store.connect(write=False) as conn:
        actions = (
            conn.execute(sa.select(audit_actions.c.id).where(audit_actions.c.run_id == run))
            .scalars()
            .all()
        )
        recorded = (
            conn.execute(
                sa.select(run_events.c.action_id).where(
                    run_events.c.run_id == run, run_events.c.action_id.is_not(None)
                )
            )
            .scalars()
            .all()
        )
    assert len(actions) == 7 and sorted(actions) == sorted(recorded)


def test_a_write_whose_commit_fails_leaves_no_event(call, engine, account, monkeypatch):
    run = new_run(call)
    before = len(events(engine, account, run))
    commit = sa.engine.base.RootTransaction.commit

    def refuse(self: Any) -> None:  # the database refuses the COMMIT itself
        self.rollback()
        raise sa.exc.OperationalError("COMMIT", {}, Exception("disk full"))

    monkeypatch.setattr(sa.engine.base.RootTransaction, "commit", refuse)
    outcome = call("contact.create", {"display_name": "Never"}, run=run)
    monkeypatch.setattr(sa.engine.base.RootTransaction, "commit", commit)
    err(outcome, "internal")
    with engine.store.connect(write=False) as conn:
        names = conn.execute(
            sa.select(contacts.c.id).where(contacts.c.display_name == "Never")
        ).all()
    assert names == []
    assert len(events(engine, account, run)) == before  # neither the write nor its event


def test_a_handler_failing_after_its_writes_leaves_no_trace_of_them(
    call, engine, account, monkeypatch
):
    from krabs.contract.errors import KrabsError
    from krabs.contract.registry import REGISTRY

    op = REGISTRY.get("contact.create")
    assert op is not None
    original = op.handler

    def half_done(uow: Any, args: Any) -> Any:
        original(uow, args)  # the write happens, then the handler fails
        raise KrabsError("conflict", "changed its mind")

    monkeypatch.setitem(REGISTRY._ops, op.name, dataclasses.replace(op, handler=half_done))
    run = new_run(call)
    err(call("contact.create", {"display_name": "Half"}, run=run), "conflict")
    monkeypatch.undo()
    last = tool_calls(engine, account, run)[-1]
    assert last["error"]["code"] == "conflict" and last["action_id"] is None
    with engine.store.connect(write=False) as conn:
        assert (
            conn.execute(sa.select(contacts.c.id).where(contacts.c.display_name == "Half")).all()
            == []
        )
    assert ok(call("run.get", {"id": run}))["stats"]["writes"] == 0


def test_a_write_whose_event_cannot_be_written_is_rolled_back(call, engine, account, monkeypatch):
    from krabs.runs import record

    run = new_run(call)

    def broken(*_args: Any, **_kwargs: Any) -> Any:
        raise sa.exc.OperationalError("INSERT", {}, Exception("run_events unwritable"))

    monkeypatch.setattr(record, "append_event", broken)
    err(call("contact.create", {"display_name": "Orphan"}, run=run), "internal")
    monkeypatch.undo()
    with engine.store.connect(write=False) as conn:
        orphan = conn.execute(
            sa.select(contacts.c.id).where(contacts.c.display_name == "Orphan")
        ).all()
    assert orphan == []


def test_a_failed_handler_records_an_error_and_nothing_of_its_write(call, engine, account):
    run = new_run(call)
    deal = call("deal.create", {"title": "x", "contact_id": "ct_01HG7Z4X9Q8M2N7P3R5T6V8W"}, run=run)
    err(deal, "not_found")
    last = tool_calls(engine, account, run)[-1]
    assert last["op"] == "deal.create" and last["error"]["code"] == "not_found"
    assert last["action_id"] is None


def test_idempotent_replay_is_recorded_as_replayed(call, engine, account):
    run = new_run(call)
    first = ok(call("contact.create", {"display_name": "Once"}, idem="k-replay", run=run))
    again = call("contact.create", {"display_name": "Once"}, idem="k-replay", run=run)
    assert again.replayed and ok(again)["id"] == first["id"]
    replays = [e for e in tool_calls(engine, account, run) if e["replayed"]]
    assert len(replays) == 1 and replays[0]["result"]["id"] == first["id"]
    stats = ok(call("run.get", {"id": run}))["stats"]
    assert stats["writes"] == 1 and stats["calls"] == 2


def test_idempotent_replay_in_another_run_is_recorded_there(call, engine, account):
    first_run, second_run = new_run(call), new_run(call)
    first = ok(call("contact.create", {"display_name": "Twice"}, idem="k-move", run=first_run))
    again = call("contact.create", {"display_name": "Twice"}, idem="k-move", run=second_run)
    assert again.replayed and ok(again)["id"] == first["id"]
    # The replay is a call of the run it was made in (the response says so too), marked as a
    # replay of the original run's call; the original run has only its own call.
    assert again.run_id == second_run
    [replay] = [e for e in tool_calls(engine, account, second_run) if e["op"] == "contact.create"]
    assert replay["replayed"] is True and replay["original_run_id"] == first_run
    assert replay["result"]["id"] == first["id"]
    originals = [e for e in tool_calls(engine, account, first_run) if e["op"] == "contact.create"]
    assert len(originals) == 1 and originals[0]["replayed"] is False
    assert ok(call("run.get", {"id": second_run}))["stats"]["writes"] == 0


def test_secrets_and_undo_tokens_never_reach_events(call, engine, account):
    run = new_run(call)
    key = ok(call("api_key.create", {"name": "leak test"}, run=run))
    contact = ok(call("contact.create", {"display_name": "Gone"}, run=run))
    deleted = ok(call("contact.delete", {"id": contact["id"]}, run=run))
    ok(call("api_key.create", {"name": "dry", "dry_run": True}, run=run))
    text = json.dumps(events(engine, account, run))
    assert key["secret"] not in text and deleted["undo_token"] not in text
    assert '"undo_token"' not in text
    created = next(e for e in tool_calls(engine, account, run) if e["op"] == "api_key.create")
    assert created["result"]["secret"] == "[redacted]"


def test_outcome_carries_its_event(call):
    run = None
    outcome = call("contact.create", {"display_name": "Evt"})
    run = outcome.run_id
    assert outcome.event is not None and outcome.event["run_id"] == run
    assert outcome.event["seq"] >= 2 and outcome.event["op"] == "contact.create"


# -- append_event -----------------------------------------------------------------------------------


def test_append_event_allocates_gap_free_seqs_and_global_ids(engine, account):
    with engine.store.transaction() as conn:
        run = insert_run(conn, account_id=account.account_id, agent_id="agent_x", name="r")
        got = [
            append_event(conn, account_id=account.account_id, run_id=run, type="span", data={})
            for _ in range(3)
        ]
        pending = take_pending(conn)
    assert [seq for _, seq in got] == [2, 3, 4]  # run.started took seq 1
    assert [g for g, _ in got] == sorted(g for g, _ in got)
    assert [e.type for e in pending] == ["run.started", "span", "span", "span"]
    with engine.store.connect(write=False) as conn:
        assert [e.seq for e in read_events(conn, account.account_id, run, 2, 10)] == [3, 4]
        assert read_events(conn, "acct_other", run, 0, 10) == []


def test_append_event_refuses_another_accounts_run(engine, account):
    other = create_account(engine.store, "other")
    with engine.store.transaction() as conn:
        run = insert_run(conn, account_id=other.account_id, agent_id="agent_x", name="r")
    from krabs.contract.errors import KrabsError

    with pytest.raises(KrabsError), engine.store.transaction() as conn:
        append_event(conn, account_id=account.account_id, run_id=run, type="span", data={})


# -- run.create / get / list ------------------------------------------------------------------------


def test_run_create_returns_the_seed_fields(call):
    run = ok(call("run.create", {"agent": "agent_default", "name": "Q3 outreach pass"}))
    assert run["object"] == "run" and run["id"] == run["run_id"] and run["id"].startswith("run_")
    assert run["agent"] == "agent_default" and run["name"] == "Q3 outreach pass"
    assert run["status"] == "open" and run["created"].endswith("Z") and len(run["created"]) == 20
    assert run["last_seq"] == 1 and run["stats"]["calls"] == 0


def test_run_create_for_another_agent_needs_admin(call):
    writer = ok(call("api_key.create", {"name": "w", "scopes": ["read", "write"]}))["secret"]
    e = err(call("run.create", {"agent": "agent_drafts", "name": "x"}, key=writer), "forbidden")
    assert e["param"] == "agent"
    assert ok(call("run.create", {"agent": "agent_drafts", "name": "x"}))["agent"] == "agent_drafts"


@pytest.mark.parametrize(
    "args",
    [
        {},
        {"name": ""},
        {"name": 5},
        {"name": "x" * 201},
        {"name": "two\nlines"},
        {"name": "x", "agent": "drafts"},
        {"name": "x", "agent": "agent_" + "a" * 100},
        {"name": "x", "unknown": 1},
    ],
)
def test_run_create_rejects_hostile_input(call, args):
    err(call("run.create", args), "invalid_argument")


def test_run_get_and_hostile_ids(call, engine):
    run = new_run(call)
    assert ok(call("run.get", {"id": run}))["id"] == run
    err(call("run.get", {"id": "run_01HG7Z4X9Q8M2N7P3R5T6V8W"}), "not_found")
    err(call("run.get", {"id": "ct_01HG7Z4X9Q8M2N7P3R5T6V8W"}), "invalid_argument")
    err(call("run.get", {"id": "run_" + "x" * 5000}), "invalid_argument")
    err(call("run.get", {"id": 7}), "invalid_argument")
    other = create_account(engine.store, "other")
    theirs = call("contact.list", key=other.secret).run_id
    err(call("run.get", {"id": theirs}), "not_found")
    err(call("run.close", {"id": theirs}), "not_found")


def test_run_stats_cover_calls_errors_writes_latency_tokens_and_cost(call):
    run = new_run(call)
    for i in range(4):
        ok(call("contact.create", {"display_name": f"s{i}"}, run=run))
    err(call("contact.get", {"id": "ct_01HG7Z4X9Q8M2N7P3R5T6V8W"}, run=run), "not_found")
    ok(call("contact.list", {}, run=run))
    spans = [
        {"node_name": "plan", "input_tokens": 100, "output_tokens": 20, "cost_usd": 0.25},
        {"node_name": "act", "input_tokens": 50, "output_tokens": 5, "cost_usd": 0.125},
    ]
    ok(call("run.add_spans", {"run_id": run, "spans": spans}))
    got = ok(call("run.get", {"id": run}))
    stats = got["stats"]
    assert (stats["calls"], stats["errors"], stats["writes"]) == (6, 1, 4)
    assert stats["input_tokens"] == 150 and stats["output_tokens"] == 25
    assert stats["cost_usd"] == pytest.approx(0.375)
    assert 0 <= stats["latency_p50_ms"] <= stats["latency_p95_ms"]
    assert stats["duration_ms"] >= 0 and got["last_call_at"] is not None
    listed = ok(call("run.list", {"limit": 100}))
    assert next(r for r in listed["data"] if r["id"] == run)["stats"] == stats


def test_run_list_filters_and_pages(call):
    new = {"agent": "agent_lister"}  # the admin key's own calls land in agent_default's run
    mine = [ok(call("run.create", {**new, "name": f"r{i}"}))["id"] for i in range(3)]
    ok(call("run.close", {"id": mine[0]}))
    page1 = ok(call("run.list", {"agent": "agent_lister", "limit": 2}))
    assert [r["id"] for r in page1["data"]] == [mine[2], mine[1]] and page1["has_more"]
    page2 = ok(call("run.list", {"agent": "agent_lister", "starting_after": page1["next_cursor"]}))
    assert [r["id"] for r in page2["data"]] == [mine[0]] and not page2["has_more"]
    done = ok(call("run.list", {"agent": "agent_lister", "status": "completed"}))
    assert [r["id"] for r in done["data"]] == [mine[0]]
    still = ok(call("run.list", {"agent": "agent_lister", "status": "open"}))
    assert {r["id"] for r in still["data"]} == set(mine[1:])
    future = ok(call("run.list", {"agent": "agent_lister", "since": "2999-01-01"}))
    assert future["data"] == []
    err(call("run.list", {"status": "running"}), "invalid_argument")
    err(call("run.list", {"limit": 0}), "invalid_argument")
    err(call("run.list", {"since": "yesterday"}), "invalid_argument")


# -- close / cancel ---------------------------------------------------------------------------------


def test_close_ends_the_run_with_an_event_and_refuses_later_calls(call, engine, account):
    run = new_run(call)
    ok(call("contact.list", {}, run=run))
    closed = ok(call("run.close", {"id": run, "reason": "done"}))
    assert closed["status"] == "completed" and closed["ended_at"]
    log = events(engine, account, run)
    assert log[-1]["type"] == "run.completed" and log[-1]["reason"] == "done"
    assert closed["last_seq"] == log[-1]["seq"]
    err(call("contact.list", {}, run=run), "run_closed")
    err(call("run.close", {"id": run}), "run_closed")
    err(call("run.cancel", {"id": run}), "run_closed")


def test_close_as_failed(call, engine, account):
    run = new_run(call)
    assert ok(call("run.close", {"id": run, "outcome": "failed"}))["status"] == "failed"
    assert events(engine, account, run)[-1]["type"] == "run.failed"
    err(call("run.close", {"id": new_run(call), "outcome": "cancelled"}), "invalid_argument")


def test_cancel_refuses_every_later_call_with_run_cancelled(call, engine, account):
    run = new_run(call)
    ok(call("contact.create", {"display_name": "before"}, run=run))
    cancelled = ok(call("run.cancel", {"id": run, "reason": "operator"}))
    assert cancelled["status"] == "cancelled"
    assert events(engine, account, run)[-1]["type"] == "run.cancelled"
    for op, args in (("contact.list", {}), ("contact.create", {"display_name": "after"})):
        e = err(call(op, args, run=run), "run_cancelled")
        assert e["param"] == "X-Krabs-Run"
    err(call("run.cancel", {"id": run}), "run_cancelled")
    err(call("run.close", {"id": run}), "run_cancelled")
    err(call("run.add_spans", {"run_id": run, "spans": [{"node_name": "x"}]}), "run_cancelled")


def test_a_run_can_close_itself(call, engine, account):
    run = new_run(call)
    ok(call("run.close", {"id": run}, run=run))
    log = events(engine, account, run)
    assert [e["type"] for e in log[-2:]] == ["run.completed", "tool_call"]
    assert [e["seq"] for e in log] == list(range(1, len(log) + 1))


def test_the_default_run_cannot_be_closed_or_cancelled(call):
    default = call("contact.list", {}).run_id
    assert err(call("run.close", {"id": default}), "invalid_argument")["param"] == "id"
    err(call("run.cancel", {"id": default}), "invalid_argument")


def test_close_dry_run_changes_nothing(call, engine, account):
    run = new_run(call)
    plan = ok(call("run.close", {"id": run, "dry_run": True}))
    assert plan["dry_run"] and plan["result"]["status"] == "completed"
    assert ok(call("run.get", {"id": run}))["status"] == "open"
    assert "run.completed" not in [e["type"] for e in events(engine, account, run)]


# -- idle expiry ------------------------------------------------------------------------------------


def _age(engine, run_id: str, when: str = "2000-01-01T00:00:00.000000Z") -> None:
    with engine.store.transaction() as conn:
        conn.execute(
            runs.update().where(runs.c.id == run_id).values(last_call_at=when, created_at=when)
        )


def test_an_idle_run_expires_when_a_call_names_it(call, engine, account):
    run = new_run(call)
    _age(engine, run)
    assert ok(call("run.get", {"id": run}))["status"] == "expired"  # reads as expired at once
    e = err(call("contact.list", {}, run=run), "run_closed")
    assert "expired" in e["message"]
    with engine.store.connect(write=False) as conn:
        assert conn.execute(sa.select(runs.c.status).where(runs.c.id == run)).scalar() == "expired"
    assert events(engine, account, run)[-1]["type"] == "run.expired"
    assert [r["id"] for r in ok(call("run.list", {"status": "expired", "limit": 100}))["data"]]


def test_the_sweep_expires_idle_runs_once(call, engine, account):
    idle, busy = new_run(call), new_run(call)
    _age(engine, idle)
    assert expire_idle(engine.store) >= 1
    assert expire_idle(engine.store) == 0
    assert ok(call("run.get", {"id": idle}))["status"] == "expired"
    assert ok(call("run.get", {"id": busy}))["status"] == "open"
    assert [e["type"] for e in events(engine, account, idle)].count("run.expired") == 1
    listed = ok(call("run.list", {"status": "open", "limit": 100}))
    assert idle not in [r["id"] for r in listed["data"]]


# -- spans ------------------------------------------------------------------------------------------


def test_spans_are_uploaded_and_listed_in_order(call, engine, account):
    run = new_run(call)
    spans = [
        {
            "node_name": f"step{i}",
            "span_kind": "LLM",
            "input_text": "in",
            "output_text": "out",
            "model": "m",
            "latency_ms": 10 + i,
            "input_tokens": i,
            "output_tokens": 1,
            "cost_usd": 0.5,
        }
        for i in range(5)
    ]
    added = ok(call("run.add_spans", {"run_id": run, "spans": spans}))
    assert added["uploaded"] == 5 and all(s.startswith("sp_") for s in added["span_ids"])
    page1 = ok(call("run.list_spans", {"run_id": run, "limit": 3}))
    assert page1["total"] == 5 and page1["has_more"]
    page2 = ok(call("run.list_spans", {"run_id": run, "starting_after": page1["next_cursor"]}))
    got = page1["data"] + page2["data"]
    assert [s["id"] for s in got] == added["span_ids"]
    assert [s["node_name"] for s in got] == [f"step{i}" for i in range(5)]
    assert got[0]["object"] == "span" and got[0]["model"] == "m" and got[2]["latency_ms"] == 12
    assert [e["type"] for e in events(engine, account, run)].count("span") == 5
    err(call("run.list_spans", {"run_id": run, "starting_after": "sp_x"}), "invalid_argument")


@pytest.mark.parametrize(
    "spans",
    [
        [],
        [{}],
        [{"node_name": ""}],
        [{"node_name": "x", "input_tokens": -1}],
        [{"node_name": "x", "cost_usd": -0.01}],
        [{"node_name": "x", "latency_ms": "fast"}],
        [{"node_name": "x", "span_kind": "a b"}],
        [{"node_name": "x", "extra": True}],
        [{"node_name": "x", "input_text": "y" * 100_001}],
        [{"node_name": "x"}] * 101,
        "not a list",
    ],
)
def test_add_spans_rejects_hostile_input(call, spans):
    run = new_run(call)
    err(call("run.add_spans", {"run_id": run, "spans": spans}), "invalid_argument")


def test_add_spans_needs_an_open_run_of_the_account(call, engine):
    err(
        call(
            "run.add_spans",
            {"run_id": "run_01HG7Z4X9Q8M2N7P3R5T6V8W", "spans": [{"node_name": "x"}]},
        ),
        "not_found",
    )
    run = new_run(call)
    ok(call("run.close", {"id": run}))
    err(call("run.add_spans", {"run_id": run, "spans": [{"node_name": "x"}]}), "run_closed")
    other = create_account(engine.store, "other")
    theirs = call("contact.list", key=other.secret).run_id
    err(call("run.list_spans", {"run_id": theirs}), "not_found")


def test_span_uploads_are_rate_limited_per_key(call, monkeypatch):
    limiter = RateLimiter(1 / 60)
    limiter.capacity = 3
    monkeypatch.setattr(span_ops, "_limiter", limiter)
    run = new_run(call)
    for _ in range(3):
        ok(call("run.add_spans", {"run_id": run, "spans": [{"node_name": "x"}]}))
    e = err(call("run.add_spans", {"run_id": run, "spans": [{"node_name": "x"}]}), "rate_limited")
    assert e["retry_after"] > 0
    other = ok(call("api_key.create", {"name": "other key"}))["secret"]
    ok(call("run.add_spans", {"run_id": run, "spans": [{"node_name": "x"}]}, key=other))


def test_span_rate_limit_answers_429_with_retry_after(http, monkeypatch):
    limiter = RateLimiter(1 / 60)
    limiter.capacity = 1
    monkeypatch.setattr(span_ops, "_limiter", limiter)
    run = http.post("/v1/run.create", json={"name": "spans 429"}).json()["id"]
    spans = {"spans": [{"node_name": "x"}]}
    assert http.post(f"/v1/runs/{run}/spans", json=spans).status_code == 201
    limited = http.post(f"/v1/runs/{run}/spans", json=spans)
    assert limited.status_code == 429
    error = limited.json()["error"]
    assert error["code"] == "rate_limited" and 0 < error["retry_after"] <= 60
    # Whole seconds, rounded up: a client that waits that long is let through.
    assert int(limited.headers["Retry-After"]) == max(1, -(-error["retry_after"] // 1))


def test_event_timestamps_are_fixed_width(call, engine, account):
    run = new_run(call)
    ok(call("contact.list", {}, run=run))
    for e in events(engine, account, run):
        assert len(e["ts"]) == len(utcnow()) and e["ts"].endswith("Z")


# -- export and restore -----------------------------------------------------------------------------


def test_a_restored_account_keeps_its_run_log_and_takes_new_events(
    call, engine, account, backend, tmp_path
):
    from conftest import make_store, test_settings
    from krabs.bulk.restore import restore_archive
    from krabs.engine import CallRequest, Engine
    from krabs.store.migrate import migrate

    run = new_run(call)
    ok(call("contact.create", {"display_name": "Kept"}, run=run))
    before = events(engine, account, run)
    path = ok(call("account.export", {}))["path"]
    target, cleanup = make_store(backend, tmp_path)
    try:
        migrate(target)
        there = Engine(target, test_settings(data_dir=tmp_path / "data"))
        resident = create_account(target, "already here")
        resident_run = there.call(
            CallRequest(op="contact.list", args={}, api_key=resident.secret)
        ).run_id
        highest = max(e["id"] for e in before)
        with target.transaction() as conn:  # the target's own events already use the archive's ids
            while (
                append_event(
                    conn, account_id=resident.account_id, run_id=resident_run, type="span", data={}
                )[0]
                < highest
            ):
                pass
        assert restore_archive(target, path) == account.account_id
        again = there.call(
            CallRequest(
                op="contact.create",
                args={"display_name": "After"},
                api_key=account.secret,
                run_id=run,
            )
        )
        ok(again)
        with target.connect(write=False) as conn:
            log = [e.as_dict() for e in read_events(conn, account.account_id, run, 0, 1000)]
        assert [(e["seq"], e["type"]) for e in log[:-1]] == [(e["seq"], e["type"]) for e in before]
        assert (
            log[-1]["seq"] == before[-1]["seq"] + 1 and log[-1]["args"]["display_name"] == "After"
        )
    finally:
        cleanup()
