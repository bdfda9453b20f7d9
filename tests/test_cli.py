"""The generated CLI: ``krabs <noun> <verb>`` in embedded mode (local data directory, the demo
account's admin) and remote mode (KRABS_URL + KRABS_API_KEY through the SDK), with the same results,
the documented exit codes, --json input, --dry-run and help generated from the schema."""

from __future__ import annotations

import json
from typing import Any

import pytest
from click.testing import CliRunner, Result

import conftest
from conftest import LiveServer, free_port
from krabs.cli import cli
from krabs.client_errors import ERROR_CLASSES, make_error
from krabs.compliance.checks import normalize
from krabs.contract.errors import STATUS_BY_CODE
from krabs.contract.registry import load_registry
from krabs.engine import Engine
from krabs.runs.attach import insert_run
from krabs.store.tables import runs
from krabs.transports.cli import EXIT_CODES

BOOT = "krabs_sk_clitest0000000000000000000000"


def krabs(env: dict[str, Any], *argv: str, input: str | None = None) -> Result:
    base = {"KRABS_RUN_ID": None, "KRABS_OUTPUT": None, "KRABS_BOOTSTRAP_KEY": None}
    return CliRunner().invoke(cli, list(argv), env={**base, **env}, input=input)


def out(result: Result) -> Any:
    assert result.exit_code == 0, (result.exit_code, result.stdout, result.stderr)
    return json.loads(result.stdout)


@pytest.fixture
def embedded(tmp_path) -> dict[str, Any]:
    return {"KRABS_URL": None, "KRABS_API_KEY": None, "KRABS_DATA_DIR": str(tmp_path / "data")}


@pytest.fixture
def remote(live, account) -> dict[str, Any]:
    return {"KRABS_URL": live.url, "KRABS_API_KEY": account.secret}


def story(env: dict[str, Any]) -> list[tuple[int, Any]]:
    """One agent's session, as shell commands; every output as (exit code, JSON)."""
    steps: list[tuple[int, Any]] = []

    def step(*argv: str) -> Any:
        result = krabs(env, *argv, "-o", "json")
        body = json.loads(result.stdout or result.stderr.strip().splitlines()[-1])
        steps.append((result.exit_code, body))
        return body

    ada = step(
        "contact", "create", "--display-name", "Ada", "--stage", "lead",
        "--email", "ada@lovelace.dev", "--company", "Analytical Engines",
    )  # fmt: skip
    step("contact", "upsert", "--email", "ada@lovelace.dev", "--title", "Countess")
    step("contact", "find-by-identity", "--identity", '{"kind":"email","value":"ADA@lovelace.dev"}')
    step("contact", "update", "--id", ada["id"], "--json", '{"attributes": {"vip": true}}')
    step("contact", "delete", "--id", ada["id"], "--dry-run")
    deleted = step("contact", "delete", "--id", ada["id"])
    step("contact", "get", "--id", ada["id"])
    step("action", "undo", "--undo-token", deleted["undo_token"])
    step("contact", "get", "--id", ada["id"])
    step("contact", "list", "--limit", "5")
    step("contact", "create", "--json", '{"stage": "sold"}')
    step("identity", "list", "--contact-id", ada["id"])
    return steps


def test_embedded_and_remote_modes_give_the_same_results(embedded, remote):
    local, server = story(embedded), story(remote)
    assert [code for code, _ in local] == [0, 0, 0, 0, 0, 0, 3, 0, 0, 0, 2, 0]
    for mine, theirs in zip(normalize(local), normalize(server), strict=True):
        assert mine == theirs
    created, upserted = local[0][1], local[1][1]
    assert created["identities"][0]["value"] == "ada@lovelace.dev"
    assert upserted == {"id": created["id"], "created": False}
    assert local[4][1]["dry_run"] is True
    assert local[6][1]["error"]["code"] == "not_found"
    assert local[8][1]["attributes"] == {"vip": True} and local[8][1]["title"] == "Countess"


def test_help_lists_every_noun_and_documents_exit_codes(embedded):
    result = krabs(embedded, "--help")
    assert result.exit_code == 0
    for noun in ("contact", "identity", "action", "api_key", "businessProfile", "serve", "schema"):
        assert noun in result.stdout
    assert "Exit codes:" in result.stdout
    for code, meaning in EXIT_CODES:
        assert f"  {code}  {meaning}" in result.stdout


def test_command_help_comes_from_the_schema(embedded):
    result = krabs(embedded, "contact", "upsert", "--help")
    assert result.exit_code == 0
    text = result.stdout
    op = load_registry().get("contact.upsert")
    assert op is not None and op.summary in text
    assert " ".join(op.description.split()[:6]) in " ".join(text.split())
    for flag in (
        "--identity",
        "--email",
        "--given-name",
        "--json",
        "--dry-run",
        "--idempotency-key",
    ):
        assert flag in text
    assert "Errors:" in text and "invalid_argument" in text
    reads = krabs(embedded, "contact", "find_by_identity", "--help").stdout
    assert "--dry-run" not in reads and "--identity" in reads
    assert krabs(embedded, "business-profile", "get", "--help").exit_code == 0


def test_exit_codes_and_errors_on_stderr(remote, live):
    missing = krabs(remote, "contact", "get", "--id", "ct_01HG7Z4X9Q8M2N7P3R5T6V8W")
    assert missing.exit_code == 3 and missing.stdout == ""
    assert "not_found" in missing.stderr and "param: id" in missing.stderr
    invalid = krabs(remote, "contact", "create", "--json", '{"stage": "sold"}')
    assert invalid.exit_code == 2 and "invalid_argument" in invalid.stderr
    assert "lead" in invalid.stderr and "param: stage" in invalid.stderr
    usage = krabs(remote, "contact", "create", "--stage", "sold")
    assert usage.exit_code == 2 and "sold" in usage.stderr
    assert krabs(remote, "contact", "explode").exit_code == 2
    assert krabs(remote, "contact", "list", "--limit", "abc").exit_code == 2
    too_many = krabs(remote, "contact", "list", "--limit", "1000")
    assert too_many.exit_code == 2 and "param: limit" in too_many.stderr
    huge = krabs(remote, "contact", "create", "--display-name", "x" * 5000)
    assert huge.exit_code == 2 and "param: display_name" in huge.stderr
    keyless = krabs({**remote, "KRABS_API_KEY": None}, "contact", "list")
    assert keyless.exit_code == 5 and "unauthenticated" in keyless.stderr
    assert krabs(remote, "nonsense", "thing").exit_code == 2

    args = ("contact", "create", "--display-name", "Key", "--idempotency-key", "cli-k1")
    assert krabs(remote, *args).exit_code == 0
    reused = krabs(
        remote, "contact", "create", "--display-name", "Other", "--idempotency-key", "cli-k1"
    )
    assert reused.exit_code == 4 and "idempotency_key_reused" in reused.stderr

    bad_key = {**remote, "KRABS_API_KEY": "krabs_sk_unknownunknownunknownunknown00"}
    denied = krabs(bad_key, "contact", "list", "-o", "json")
    assert denied.exit_code == 5
    assert json.loads(denied.stderr)["error"]["code"] == "unauthenticated"

    nowhere = {**remote, "KRABS_URL": f"http://127.0.0.1:{free_port()}"}
    unreachable = krabs(nowhere, "contact", "list")
    assert unreachable.exit_code == 9 and "unavailable" in unreachable.stderr


def test_a_read_only_key_is_forbidden_in_both_modes(remote, embedded):
    for env in (remote, embedded):
        key = out(
            krabs(env, "api_key", "create", "--name", "reader", "--scopes", "read", "-o", "json")
        )
        reader = {**env, "KRABS_API_KEY": key["secret"]}
        assert krabs(reader, "contact", "list").exit_code == 0
        refused = krabs(reader, "contact", "create", "--display-name", "No")
        assert refused.exit_code == 5 and "forbidden" in refused.stderr


def test_runs_attach_through_the_environment(remote, engine, account):
    assert krabs({**remote, "KRABS_RUN_ID": "run_nope"}, "contact", "list").exit_code == 3
    with engine.store.transaction(write=True) as conn:
        open_run = insert_run(conn, account_id=account.account_id, agent_id="agent_cli", name="cli")
        closed = insert_run(conn, account_id=account.account_id, agent_id="agent_cli", name="done")
        conn.execute(runs.update().where(runs.c.id == closed).values(status="completed"))
    made = out(krabs({**remote, "KRABS_RUN_ID": open_run}, "contact", "create", "-o", "json"))
    actions = out(krabs(remote, "action", "list", "--run", open_run, "-o", "json"))
    assert [a["targets"][0] for a in actions["data"]] == [made["id"]]
    # action.list has its own `run` field: --run filters, --krabs-run attaches.
    both = krabs(remote, "action", "list", "--run", open_run, "--krabs-run", closed)
    assert both.exit_code == 7
    refused = krabs(remote, "contact", "list", "--run", closed)
    assert refused.exit_code == 7 and "run_closed" in refused.stderr


def test_rate_limited_exits_6(store, account):
    slow = Engine(store, conftest.test_settings(rate_limit_per_second=0.001))
    with LiveServer(slow) as server:
        env = {"KRABS_URL": server.url, "KRABS_API_KEY": account.secret}
        assert krabs(env, "contact", "list").exit_code == 0
        limited = krabs(env, "contact", "list")
    assert limited.exit_code == 6 and "rate_limited" in limited.stderr


def test_every_error_class_has_its_documented_exit_code():
    documented = {code: text for code, text in EXIT_CODES}
    for code in ERROR_CLASSES:
        exit_code = make_error(code, "m").exit_code
        assert code in documented[exit_code].split(", "), (code, exit_code)
    assert make_error("approval_required", "m").exit_code == 8
    assert make_error("approval_rejected", "m").exit_code == 8
    for code in STATUS_BY_CODE:  # every code the server can answer has a documented exit code
        exit_code = make_error(code, "m").exit_code
        assert code in documented[exit_code].split(", "), (code, exit_code)
    assert make_error("internal", "m").exit_code == 1


def test_json_input_inline_from_a_file_and_stdin(embedded, tmp_path):
    path = tmp_path / "ada.json"
    path.write_text(
        json.dumps({"display_name": "File", "identities": [{"kind": "email", "value": "f@x.io"}]})
    )
    from_file = out(krabs(embedded, "contact", "create", "--json", f"@{path}", "-o", "json"))
    assert from_file["display_name"] == "File"
    piped = krabs(embedded, "contact", "create", "--json", "-", "--title", "CTO", "-o", "json",
                  input='{"display_name": "Stdin", "title": "ignored"}')  # fmt: skip
    assert out(piped)["display_name"] == "Stdin" and out(piped)["title"] == "CTO"
    broken = krabs(embedded, "contact", "create", "--json", "{nope")
    assert broken.exit_code == 2 and "param: --json" in broken.stderr
    missing = krabs(embedded, "contact", "create", "--json", "@/nonexistent/x.json")
    assert missing.exit_code == 2 and "cannot read" in missing.stderr
    listed = out(
        krabs(
            embedded,
            "api_key",
            "create",
            "--name",
            "k",
            "--scopes",
            '["read", "write"]',
            "-o",
            "json",
        )
    )
    assert listed["scopes"] == ["read", "write"]
    repeated = out(
        krabs(
            embedded,
            "api_key",
            "create",
            "--name",
            "k2",
            "--scopes",
            "read",
            "--scopes",
            "write",
            "-o",
            "json",
        )
    )
    assert repeated["scopes"] == ["read", "write"]


def test_dry_run_writes_nothing(embedded):
    plan = krabs(embedded, "contact", "create", "--email", "plan@x.io", "--dry-run")
    assert plan.exit_code == 0 and "dry-run: nothing was written" in plan.stdout
    assert out(krabs(embedded, "contact", "list", "-o", "json"))["data"] == []
    assert out(krabs(embedded, "action", "list", "-o", "json"))["data"] == []


def test_tables_for_people(embedded):
    krabs(embedded, "contact", "create", "--display-name", "Grace Hopper", "--email", "g@navy.mil")
    table = krabs(embedded, "contact", "list")
    assert table.exit_code == 0
    assert (
        "Grace Hopper" in table.stdout and "display_name" in table.stdout and "ct_" in table.stdout
    )
    one = krabs(embedded, "contact", "find-by-identity", "--email", "G@navy.mil")
    assert one.exit_code == 0 and "Grace Hopper" in one.stdout and "identities" in one.stdout


def test_an_empty_list_keeps_its_title_and_caption_on_one_line(embedded):
    table = krabs(embedded, "tag", "list")
    assert table.exit_code == 0
    lines = [line.strip() for line in table.stdout.splitlines()]
    assert "tag.list" in lines and "0 shown" in lines, table.stdout


def test_embedded_mode_acts_as_the_demo_admin(embedded):
    first = krabs(embedded, "contact", "list")
    assert first.exit_code == 0 and "krabs_sk_" in first.stderr, "the new demo key is shown once"
    secret = next(line for line in first.stderr.splitlines() if line.startswith("krabs_sk_"))
    assert "krabs_sk_" not in krabs(embedded, "contact", "list").stderr
    made = out(krabs(embedded, "contact", "create", "--display-name", "Ada", "-o", "json"))
    keys = out(krabs(embedded, "api_key", "list", "-o", "json"))["data"]
    action = out(krabs(embedded, "action", "list", "--target", made["id"], "-o", "json"))["data"][0]
    assert action["actor"]["key"] == keys[-1]["id"]
    # The printed key is that admin: it works as KRABS_API_KEY too.
    again = out(krabs({**embedded, "KRABS_API_KEY": secret}, "contact", "list", "-o", "json"))
    assert [c["id"] for c in again["data"]] == [made["id"]]


def test_a_bootstrap_key_is_not_printed(embedded):
    result = krabs({**embedded, "KRABS_BOOTSTRAP_KEY": BOOT}, "contact", "list")
    assert result.exit_code == 0 and BOOT not in result.stderr


def test_schema_command(embedded, remote):
    local = out(krabs(embedded, "schema"))
    served = out(krabs(remote, "schema"))
    assert local == served and "contact.create" in local["operations"]
    entry = out(krabs(embedded, "schema", "contact.upsert"))
    assert entry["name"] == "contact.upsert" and "identity" in entry["input"]["properties"]
    assert krabs(embedded, "schema", "contact.explode").exit_code == 3
    nowhere = {**remote, "KRABS_URL": f"http://127.0.0.1:{free_port()}"}
    offline = krabs(nowhere, "schema")
    assert offline.exit_code == 9 and offline.stdout == "" and "unavailable" in offline.stderr


def test_bootstrap_commands_still_work(embedded):
    assert krabs(embedded, "migrate").exit_code == 0
    made = krabs(embedded, "keys", "create", "--account-name", "Other")
    assert made.exit_code == 0 and made.stdout.startswith("krabs_sk_")
    other = {**embedded, "KRABS_API_KEY": made.stdout.strip()}
    assert out(krabs(other, "contact", "list", "-o", "json"))["data"] == []


def test_json_alone_prints_json(embedded):
    made = out(krabs(embedded, "contact", "create", "--display-name", "Ada", "--json"))
    assert made["display_name"] == "Ada"
    listed = out(krabs(embedded, "contact", "list", "--json", "--limit", "1"))
    assert [c["id"] for c in listed["data"]] == [made["id"]]
    missing = krabs(embedded, "contact", "get", "--id", "ct_01HG7Z4X9Q8M2N7P3R5T6V8W", "--json")
    assert missing.exit_code == 3
    assert json.loads(missing.stderr)["error"]["param"] == "id"


@pytest.fixture(scope="module")
def embedded_every(tmp_path_factory) -> dict[str, Any]:
    data = tmp_path_factory.mktemp("every")
    return {"KRABS_URL": None, "KRABS_API_KEY": None, "KRABS_DATA_DIR": str(data / "data")}


@pytest.mark.parametrize("name", load_registry().names())
def test_every_operation_runs_in_embedded_mode(name, embedded_every):
    """The remote leg of `krabs compliance` covers every operation over HTTP; this covers every one
    in embedded mode: its scenario's setup and the call itself, through generated commands."""
    from krabs.compliance.scenarios import load_scenarios
    from krabs.contract.schema import schema_document
    from krabs.transports.cli import args_to_argv

    entries = schema_document(load_registry())["operations"]

    def run(op: str, args: dict[str, Any]) -> Any:
        noun, verb = op.split(".")
        argv = [noun, verb.replace("_", "-"), *args_to_argv(entries[op], args), "-o", "json"]
        return out(krabs(embedded_every, *argv))

    args = load_scenarios()[name](run)
    result = run(name, args)
    assert isinstance(result, dict)
    load_registry().get(name).output.model_validate(result)


def test_wait_holds_a_gated_call_until_a_human_decides_remote(remote, engine, account):
    """``--wait SECONDS`` is HTTP's ``Prefer: wait``: the gated delete is held until a human
    decides, then prints its outcome."""
    _held_until_decided(remote, engine, account)


def test_wait_holds_a_gated_call_until_a_human_decides_embedded(embedded):
    """The same in embedded mode, the decision made by another engine on the same file (as the
    server or another ``krabs`` process would): the waiter finds it by looking, not by an event."""
    from pathlib import Path

    from krabs.accounts import create_account
    from krabs.app import open_engine
    from krabs.config import Settings

    engine = open_engine(Settings(data_dir=Path(embedded["KRABS_DATA_DIR"])))
    try:
        _held_until_decided(embedded, engine, create_account(engine.store, "Waiting"))
    finally:
        engine.store.dispose()


def _held_until_decided(env: dict[str, Any], engine: Engine, account: Any) -> None:
    import threading
    import time

    from krabs.engine import CallRequest

    def admin(op: str, args: dict[str, Any]) -> Any:
        outcome = engine.call(CallRequest(op=op, args=args, api_key=account.secret))
        assert outcome.ok, outcome.error
        return outcome.result

    agent = admin("api_key.create", {"name": "w", "agent_id": "agent_waits", "scopes": ["write"]})
    admin("approval_policy.set", {"agent_id": "agent_waits", "rules": [{"op": "contact.delete"}]})
    with engine.store.transaction() as conn:
        run = insert_run(conn, account_id=account.account_id, agent_id="agent_waits", name="gated")
    contact = admin("contact.create", {"display_name": "Held"})["id"]
    agent_env = {**env, "KRABS_API_KEY": agent["secret"], "KRABS_RUN_ID": run}

    refused = krabs(agent_env, "contact", "delete", "--id", contact, "--wait", "-1")
    assert refused.exit_code == 2 and "--wait" in refused.stderr

    def decide() -> None:
        for _ in range(400):  # bounded: until the held call has asked
            pending = admin("approval.list", {"status": "pending", "run_id": run})["data"]
            if pending:
                admin("approval.decide", {"id": pending[0]["id"], "decision": "approve"})
                return
            time.sleep(0.05)

    decider = threading.Thread(target=decide, daemon=True)
    decider.start()
    held = krabs(agent_env, "contact", "delete", "--id", contact, "--wait", "20", "-o", "json")
    decider.join(30)
    assert out(held)["deleted"] is True
