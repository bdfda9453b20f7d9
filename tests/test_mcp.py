"""The MCP transport, through the official SDK's own client: streamable HTTP against a live server
(both protocol eras, both databases) and stdio against a spawned ``krabs mcp``."""

from __future__ import annotations

import dataclasses
import json
import os
import re
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, TypeVar

import anyio
import httpx
import httpx2
import pytest
import sqlalchemy as sa
import uvicorn
from mcp import Client, StdioServerParameters
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.exceptions import MCPError
from pydantic import BaseModel

from conftest import free_port, ok
from krabs.accounts import NewAccount
from krabs.compliance.mcp_leg import call_over_mcp
from krabs.contract.models import Args, Out
from krabs.contract.registry import Operation, Registry, load_registry
from krabs.contract.schema import model_schema
from krabs.runs.attach import insert_run
from krabs.store.db import Store
from krabs.store.tables import runs
from krabs.transports.http import create_app
from krabs.transports.mcp import McpEndpoint
from krabs.transports.mcp_tools import LIST_BUDGET, TOOL_NAME, Catalog, flatten, tool_name

ERAS = ["legacy", "2026-07-28"]
TIMEOUT = 60
T = TypeVar("T")


def run(fn: Callable[[], Awaitable[T]]) -> T:
    """Run an async test body with a hard bound."""

    async def bounded() -> T:
        with anyio.fail_after(TIMEOUT):
            return await fn()

    return anyio.run(bounded)


@asynccontextmanager
async def connect(
    url: str,
    key: str,
    era: str,
    *,
    query: str = "",
    headers: dict[str, str] | None = None,
    seen: list[httpx2.Response] | None = None,
) -> AsyncIterator[Client]:
    async def record(response: httpx2.Response) -> None:
        if seen is not None:
            seen.append(response)

    http = httpx2.AsyncClient(
        headers={"Authorization": f"Bearer {key}", **(headers or {})},
        timeout=httpx2.Timeout(30),
        event_hooks={"response": [record]},
    )
    transport = streamable_http_client(f"{url}/mcp{query}", http_client=http)
    async with http, Client(transport, mode=era, read_timeout_seconds=30) as client:
        yield client


def no_unions(node: Any) -> bool:
    if isinstance(node, dict):
        if {"$ref", "anyOf", "oneOf", "allOf", "$defs"} & node.keys():
            return False
        return all(no_unions(v) for v in node.values())
    if isinstance(node, list):
        return all(no_unions(v) for v in node)
    return True


def text_json(result: Any) -> Any:
    assert result.content and result.content[0].type == "text"
    return json.loads(result.content[0].text)


def run_row(store: Store, run_id: str) -> Any:
    with store.connect(write=False) as conn:
        return conn.execute(sa.select(runs).where(runs.c.id == run_id)).first()


def new_run(store: Store, account: NewAccount, status: str = "open") -> str:
    with store.transaction() as conn:
        return insert_run(
            conn, account_id=account.account_id, agent_id="agent_default", name="t", status=status
        )


# --- the tool list, generated from the registry -------------------------------------------------


def test_tool_names_fit_every_host_and_never_collide():
    registry = load_registry()
    names = [tool_name(op.name) for op in registry]
    assert len(set(names)) == len(names) == len(registry)
    for name in names:
        assert TOOL_NAME.fullmatch(name) and len(name) < 40, name
    assert "contact_create" in names and "contact_find_by_identity" in names


class _In(Args):
    x: int | None = None


class _Out(Out):
    id: str


def _op(name: str, description: str = "Does it.") -> Operation:
    return Operation(
        name=name,
        summary=f"The {name} operation.",
        description=description,
        input=_In,
        output=_Out,
        handler=lambda uow, args: {},
        scope="write",
        mutates=True,
        destructive=False,
        added_in="1.0",
        errors=(),
        examples=(),
    )


def test_colliding_or_invalid_tool_names_are_refused_at_build():
    registry = Registry()
    registry.add(_op("deal.close_won"))
    registry.add(_op("deal_close.won"))
    with pytest.raises(ValueError, match="same MCP tool name"):
        Catalog.build(registry)
    bad = Registry()
    bad.add(_op("contact.créer"))
    with pytest.raises(ValueError, match="not a valid MCP tool name"):
        Catalog.build(bad)
    long = Registry()
    long.add(_op("contact." + "x" * 40))
    with pytest.raises(ValueError):
        Catalog.build(long)


def test_a_larger_registry_is_trimmed_on_the_wire_not_in_the_registry():
    """An eighth more operations than today's registry, with descriptions four times as long, still
    lists every tool within the budget: descriptions and schema detail give way, never a tool.
    (At 77 operations the floor is ~600 bytes a tool, so about 90 fit; past that, ``toolsets``.)"""
    big = Registry()
    for i, op in enumerate(load_registry()):
        big.add(dataclasses.replace(op, description=op.description * 4))
        if i % 8 == 0:
            big.add(dataclasses.replace(op, name=f"{op.noun}2.{op.verb}"))
    catalog = Catalog.build(big)
    assert len(catalog.tools) == len(big)
    listed = [
        t.model_dump(by_alias=True, mode="json", exclude_none=True) for t in catalog.tools.values()
    ]
    assert len(json.dumps({"tools": listed}, separators=(",", ":")).encode()) <= LIST_BUDGET
    assert all(no_unions(t["inputSchema"]) for t in listed)
    summaries = {op.name: op.summary for op in big}
    assert all(t["description"].startswith(summaries[t["title"]]) for t in listed)


def test_flatten_turns_optional_into_a_nullable_type_and_merges_unions():
    class Inner(BaseModel):
        n: int

    class Model(BaseModel):
        a: int | None = None
        b: str | int
        c: Inner | None = None
        d: list[Inner]

    schema = flatten(model_schema(Model))  # refs inlined as for /v1/schema, then flattened
    assert no_unions(schema)
    props = schema["properties"]
    assert props["a"]["type"] == ["integer", "null"]
    assert props["b"]["type"] == ["integer", "string"]
    assert props["c"]["type"] == ["object", "null"] and props["c"]["properties"]["n"]
    assert props["d"]["items"]["properties"]["n"]["type"] == "integer"


@pytest.mark.parametrize("era", ERAS)
def test_tools_list_is_the_registry(live, account, engine, era):
    async def body() -> Any:
        async with connect(live.url, account.secret, era) as client:
            return await client.list_tools()

    listed = run(body)
    by_name = {t.name: t for t in listed.tools}
    assert set(by_name) == {tool_name(op.name) for op in engine.registry}
    wire = listed.model_dump(by_alias=True, mode="json", exclude_none=True)
    assert len(json.dumps(wire, separators=(",", ":")).encode()) < 60_000
    for op in engine.registry:
        tool = by_name[tool_name(op.name)]
        assert tool.title == op.name and tool.meta == {"krabs/op": op.name}
        hints = tool.annotations
        assert hints is not None
        assert hints.read_only_hint is (not op.mutates)
        assert hints.idempotent_hint is (not op.mutates)
        assert hints.destructive_hint is op.destructive
        assert hints.open_world_hint is False
        assert tool.input_schema["type"] == "object" and no_unions(tool.input_schema)
        assert tool.output_schema is not None and tool.output_schema["type"] == "object"
        assert no_unions(tool.output_schema)
        assert ("idempotency_key" in tool.input_schema["properties"]) is op.mutates
        assert ("dry_run" in tool.input_schema["properties"]) is op.mutates
    assert by_name["contact_delete"].annotations.destructive_hint is True  # type: ignore[union-attr]
    assert by_name["action_undo"].annotations.destructive_hint is True  # type: ignore[union-attr]
    create = by_name["contact_create"].input_schema["properties"]
    assert create["stage"]["enum"] == ["lead", "prospect", "customer", "churned"]


# --- calls over streamable HTTP -----------------------------------------------------------------


@pytest.mark.parametrize("era", ERAS)
def test_call_returns_structured_content_text_copy_and_meta(live, account, era):
    async def body() -> tuple[Any, Any, Any]:
        async with connect(live.url, account.secret, era) as client:
            made = await client.call_tool(
                "contact_create",
                {"display_name": "Ada", "identities": [{"kind": "email", "value": "Ada@L.dev"}]},
            )
            got = await client.call_tool("contact_get", {"id": made.structured_content["id"]})
            found = await client.call_tool(
                "contact_find_by_identity", {"identity": {"kind": "email", "value": "ada@l.dev"}}
            )
            return made, got, found

    made, got, found = run(body)
    assert made.is_error is False
    contact = made.structured_content
    assert contact["object"] == "contact" and contact["id"].startswith("ct_")
    assert text_json(made) == contact
    assert made.meta["krabs/op"] == "contact.create"
    assert made.meta["krabs/action_id"].startswith("act_")
    assert made.meta["krabs/run_id"].startswith("run_")
    assert got.structured_content["id"] == contact["id"] and "krabs/action_id" not in got.meta
    assert found.structured_content["id"] == contact["id"]


@pytest.mark.parametrize("era", ERAS)
def test_domain_and_validation_failures_are_tool_errors_an_unknown_tool_is_a_protocol_error(
    live, account, era
):
    async def body() -> tuple[list[Any], BaseException | None]:
        out = []
        async with connect(live.url, account.secret, era) as client:
            out.append(await client.call_tool("contact_create", {"display_name": 5}))
            out.append(await client.call_tool("contact_create", {"nickname": "x"}))
            out.append(await client.call_tool("contact_get", {"id": "ct_01NOSUCHCONTACT"}))
            out.append(await client.call_tool("contact_create", {"stage": "won"}))
            out.append(await client.call_tool("contact_list", {"limit": -1}))
            try:
                await client.call_tool("contact_explode", {})
            except MCPError as exc:
                return out, exc
        return out, None

    (bad_type, unknown_field, missing, bad_enum, negative), unknown = run(body)
    for result, code, param in (
        (bad_type, "invalid_argument", "display_name"),
        (unknown_field, "invalid_argument", "nickname"),
        (missing, "not_found", "id"),
        (bad_enum, "invalid_argument", "stage"),
        (negative, "invalid_argument", "limit"),
    ):
        assert result.is_error is True
        error = result.structured_content["error"]
        assert error["code"] == code and error["param"] == param, error
        assert error["op"] and error["message"] and error["request_id"].startswith("req_")
        assert text_json(result) == result.structured_content
    assert "lead" in bad_enum.structured_content["error"]["message"]
    assert isinstance(unknown, MCPError) and "contact_explode" in unknown.message


@pytest.mark.parametrize("era", ERAS)
def test_dry_run_persists_nothing(live, account, era):
    email = f"dry-{era}@example.com"

    async def body() -> tuple[Any, Any]:
        async with connect(live.url, account.secret, era) as client:
            plan = await client.call_tool(
                "contact_create",
                {
                    "display_name": "Dry",
                    "identities": [{"kind": "email", "value": email}],
                    "dry_run": True,
                },
            )
            after = await client.call_tool(
                "contact_find_by_identity", {"identity": {"kind": "email", "value": email}}
            )
            return plan, after

    plan, after = run(body)
    assert plan.is_error is False
    assert plan.structured_content["dry_run"] is True
    assert plan.structured_content["result"]["display_name"] == "Dry"
    assert plan.structured_content["touched"]
    assert "krabs/action_id" not in plan.meta
    assert after.is_error and after.structured_content["error"]["code"] == "not_found"


@pytest.mark.parametrize("era", ERAS)
def test_idempotency_key_replays_and_refuses_a_different_body(live, account, era):
    key = f"mcp-idem-{era}-{account.account_id}"

    async def body() -> list[Any]:
        async with connect(live.url, account.secret, era) as client:
            args = {"display_name": "Once", "idempotency_key": key}
            first = await client.call_tool("contact_create", args)
            again = await client.call_tool("contact_create", args)
            other = await client.call_tool(
                "contact_create", {"display_name": "Twice", "idempotency_key": key}
            )
            wrong = await client.call_tool(
                "contact_create", {"display_name": "X", "idempotency_key": 7}
            )
            listed = await client.call_tool("contact_list", {"q": "Once"})
            return [first, again, other, wrong, listed]

    first, again, other, wrong, listed = run(body)
    assert first.is_error is False and "krabs/replayed" not in first.meta
    assert again.structured_content == first.structured_content
    assert again.meta["krabs/replayed"] is True
    assert other.structured_content["error"]["code"] == "idempotency_key_reused"
    assert wrong.structured_content["error"]["param"] == "idempotency_key"
    assert len(listed.structured_content["data"]) == 1


def test_legacy_session_is_the_run_created_on_first_call(live, account, engine):
    seen: list[httpx2.Response] = []

    async def body() -> list[Any]:
        async with connect(live.url, account.secret, "legacy", seen=seen) as client:
            return [
                await client.call_tool("contact_list", {}),
                await client.call_tool("contact_create", {"display_name": "In session"}),
            ]

    listed, made = run(body)
    sessions = {r.headers["mcp-session-id"] for r in seen if "mcp-session-id" in r.headers}
    assert len(sessions) == 1
    session = sessions.pop()
    assert re.fullmatch(r"run_[0-9A-Z]{26}", session)
    assert listed.meta["krabs/run_id"] == made.meta["krabs/run_id"] == session
    row = run_row(engine.store, session)
    assert row.name == "mcp session" and row.account_id == account.account_id
    assert row.status == "open"


def test_a_session_answers_only_the_key_that_opened_it(live, account, engine):
    from krabs.accounts import create_account

    other = create_account(engine.store, "other")
    seen: list[httpx2.Response] = []
    stolen: list[httpx.Response] = []
    listing = {"jsonrpc": "2.0", "id": 7, "method": "tools/list"}

    async def body() -> Any:
        async with connect(live.url, account.secret, "legacy", seen=seen) as client:
            session = next(
                r.headers["mcp-session-id"] for r in seen if "mcp-session-id" in r.headers
            )
            async with httpx.AsyncClient(base_url=live.url, timeout=30) as raw:
                for key in (other.secret, account.secret):
                    stolen.append(
                        await raw.post(
                            "/mcp",
                            json=listing,
                            headers={
                                "Authorization": f"Bearer {key}",
                                "Mcp-Session-Id": session,
                                "MCP-Protocol-Version": "2025-11-25",
                                "Accept": "application/json, text/event-stream",
                            },
                        )
                    )
            return await client.list_tools()

    assert run(body).tools
    theirs, ours = stolen
    assert theirs.status_code == 404
    assert ours.status_code == 200 and ours.json()["result"]["tools"]


@pytest.mark.parametrize("era", ERAS)
def test_run_precedence_meta_then_header_then_session_else_default(live, account, engine, era):
    by_header, by_meta = new_run(engine.store, account), new_run(engine.store, account)
    cancelled = new_run(engine.store, account, "cancelled")

    async def body() -> list[Any]:
        async with connect(live.url, account.secret, era, headers={"X-Krabs-Run": by_header}) as c:
            header_only = await c.call_tool("contact_list", {})
            both = await c.call_tool("contact_list", {}, meta={"krabs/run_id": by_meta})
            refused = await c.call_tool("contact_list", {}, meta={"krabs/run_id": cancelled})
            ghost = await c.call_tool("contact_list", {}, meta={"krabs/run_id": "run_NOPE"})
            not_text = await c.call_tool("contact_list", {}, meta={"krabs/run_id": 12})
        async with connect(live.url, account.secret, era) as c:
            bare = await c.call_tool("contact_list", {})
        return [header_only, both, refused, ghost, not_text, bare]

    header_only, both, refused, ghost, not_text, bare = run(body)
    assert header_only.meta["krabs/run_id"] == by_header
    assert both.meta["krabs/run_id"] == by_meta
    assert refused.structured_content["error"]["code"] == "run_cancelled"
    assert ghost.structured_content["error"]["code"] == "not_found"
    assert not_text.structured_content["error"]["code"] == "invalid_argument"
    bare_run = run_row(engine.store, bare.meta["krabs/run_id"])
    expected = "mcp session" if era == "legacy" else "default"
    assert bare_run.name == expected and bare_run.account_id == account.account_id


@pytest.mark.parametrize("era", ERAS)
def test_a_call_held_at_an_approval_gate_waits_for_the_decision(live, account, engine, call, era):
    """``_meta["krabs/wait"]`` is HTTP's ``Prefer: wait=N``: the gated call is held until a human
    decides, then answers the outcome; a wait that is no number of seconds is refused, typed."""
    agent = ok(call("api_key.create", {"name": "a", "agent_id": "agent_mcp", "scopes": ["write"]}))
    policy = {"agent_id": "agent_mcp", "rules": [{"op": "contact.delete"}]}
    ok(call("approval_policy.set", policy))
    held_run = new_run(engine.store, account)
    with engine.store.transaction() as conn:
        conn.execute(runs.update().where(runs.c.id == held_run).values(agent_id="agent_mcp"))
    contact = ok(call("contact.create", {"display_name": "Held"}, key=agent["secret"]))
    meta = {"krabs/run_id": held_run}

    def decide() -> None:
        for _ in range(400):  # bounded: until the held call has asked
            found = ok(call("approval.list", {"status": "pending", "run_id": held_run}))["data"]
            if found:
                ok(call("approval.decide", {"id": found[0]["id"], "decision": "approve"}))
                return
            time.sleep(0.05)
        raise AssertionError("the held call never asked for an approval")

    async def body() -> list[Any]:
        async with connect(live.url, agent["secret"], era) as c:
            bad = [
                await c.call_tool("contact_delete", {"id": contact["id"]}, meta={**meta, **w})
                for w in ({"krabs/wait": "10"}, {"krabs/wait": -1}, {"krabs/wait": True})
            ]
            async with anyio.create_task_group() as tasks:
                tasks.start_soon(anyio.to_thread.run_sync, decide)
                waited = await c.call_tool(
                    "contact_delete", {"id": contact["id"]}, meta={**meta, "krabs/wait": 20}
                )
        return [*bad, waited]

    *bad, waited = run(body)
    for refused in bad:
        error = refused.structured_content["error"]
        assert refused.is_error and error["code"] == "invalid_argument"
        assert error["param"] == '_meta["krabs/wait"]'
    assert waited.is_error is False, waited.structured_content
    assert waited.structured_content["deleted"] is True
    assert waited.meta["krabs/run_id"] == held_run


@pytest.mark.parametrize("era", ERAS)
def test_toolsets_filter_the_list_and_the_calls(live, account, era):
    async def body() -> tuple[Any, BaseException | None]:
        async with connect(live.url, account.secret, era, query="?toolsets=contact,identity") as c:
            listed = await c.list_tools()
            try:
                await c.call_tool("action_list", {})
            except MCPError as exc:
                return listed, exc
        return listed, None

    listed, refused = run(body)
    nouns = {t.title.split(".")[0] for t in listed.tools if t.title}
    assert nouns == {"contact", "identity"}
    assert refused is not None and "action_list" in refused.message


def test_under_a_server_that_runs_lifespans_the_app_lifespan_runs_the_sessions(engine, account):
    """``krabs serve`` runs the app's lifespan, which runs the SDK's session manager; the test
    servers run none, so there the first request starts it (the other tests)."""
    app = create_app(engine)
    endpoint = next(r.endpoint for r in app.routes if getattr(r, "path", "") == "/mcp")
    assert isinstance(endpoint, McpEndpoint)
    port = free_port()
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 20
        while not server.started:
            assert time.monotonic() < deadline and thread.is_alive(), "server did not start"
            time.sleep(0.02)

        async def body() -> list[Any]:
            out = []
            for era in ERAS:
                async with connect(f"http://127.0.0.1:{port}", account.secret, era) as client:
                    out.append(await client.call_tool("contact_list", {}))
            return out

        assert all(not r.is_error for r in run(body))
        assert endpoint._task is None  # served by the lifespan, not by the first-request fallback
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def test_endpoint_refuses_missing_keys_and_unknown_toolsets(live, account):
    ping = {"jsonrpc": "2.0", "id": 1, "method": "ping"}
    with httpx.Client(base_url=live.url, timeout=30) as client:
        anonymous = client.post("/mcp", json=ping)
        assert anonymous.status_code == 401
        assert anonymous.json()["error"]["code"] == "unauthenticated"
        assert anonymous.headers["www-authenticate"].startswith("Bearer")
        wrong = client.post("/mcp", json=ping, headers={"Authorization": "Bearer krabs_sk_nope"})
        assert wrong.status_code == 401
        bad = client.post(
            "/mcp?toolsets=contact,spaceship",
            json=ping,
            headers={"Authorization": f"Bearer {account.secret}"},
        )
        assert bad.status_code == 400
        error = bad.json()["error"]
        assert error["param"] == "toolsets" and "spaceship" in error["message"]
        assert "contact" in error["message"]


def test_compliance_leg_matches_http(live, account, http):
    async def body() -> list[dict[str, Any]]:
        made = await call_over_mcp(
            live.url,
            account.secret,
            "contact.create",
            {"display_name": "Leg"},
            idempotency_key="leg-1",
        )
        again = await call_over_mcp(
            live.url,
            account.secret,
            "contact.create",
            {"display_name": "Leg"},
            idempotency_key="leg-1",
        )
        bad = await call_over_mcp(live.url, account.secret, "contact.get", {"id": "ct_01NONE"})
        unknown = await call_over_mcp(live.url, account.secret, "contact.explode", {})
        legacy = await call_over_mcp(
            live.url + "/mcp", account.secret, "contact.list", {"q": "Leg"}, era="legacy"
        )
        return [made, again, bad, unknown, legacy]

    made, again, bad, unknown, legacy = run(body)
    assert made["result"]["display_name"] == "Leg" and again["result"] == made["result"]
    assert again["meta"]["replayed"] is True and again["meta"]["run_id"].startswith("run_")
    assert made["meta"]["action_id"].startswith("act_") and "replayed" not in made["meta"]
    via_http = http.post("/v1/contact.get", json={"id": made["result"]["id"]}).json()
    assert via_http["id"] == made["result"]["id"]
    assert bad["error"]["code"] == "not_found"
    http_bad = http.post("/v1/contact.get", json={"id": "ct_01NONE"}).json()["error"]
    assert {k: bad["error"][k] for k in ("code", "param", "message")} == {
        k: http_bad[k] for k in ("code", "param", "message")
    }
    assert unknown["error"]["code"] == "unknown_operation"
    assert [c["id"] for c in legacy["result"]["data"]] == [made["result"]["id"]]


# --- stdio: a real `krabs mcp` process ----------------------------------------------------------

KRABS = str(Path(sys.executable).with_name("krabs"))
BOOTSTRAP = "krabs_sk_" + "m" * 32


def stdio_env(data_dir: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("KRABS_")}
    return {**env, "KRABS_DATA_DIR": str(data_dir), "KRABS_BOOTSTRAP_KEY": BOOTSTRAP, **extra}


@pytest.mark.parametrize("era", ERAS)
def test_stdio_serves_the_same_tools_in_one_run_per_process(tmp_path, era):
    extra = {"KRABS_API_KEY": BOOTSTRAP} if era == "legacy" else {}  # else the demo admin
    params = StdioServerParameters(
        command=KRABS, args=["mcp", "--toolsets", "contact"], env=stdio_env(tmp_path, **extra)
    )

    async def body() -> dict[str, Any]:
        async with Client(params, mode=era, read_timeout_seconds=30) as client:
            return {
                "tools": await client.list_tools(),
                "made": await client.call_tool("contact_create", {"display_name": "Stdio"}),
                "again": await client.call_tool(
                    "contact_create", {"display_name": "Stdio", "idempotency_key": "k"}
                ),
                "replay": await client.call_tool(
                    "contact_create", {"display_name": "Stdio", "idempotency_key": "k"}
                ),
                "dry": await client.call_tool(
                    "contact_create", {"display_name": "Dry", "dry_run": True}
                ),
                "bad": await client.call_tool("contact_get", {"id": 3}),
                "listed": await client.call_tool("contact_list", {}),
                "ghost": await client.call_tool(
                    "contact_list", {}, meta={"krabs/run_id": "run_NOPE"}
                ),
            }

    out = run(body)
    assert {t.title for t in out["tools"].tools if t.title} == {
        op.name for op in load_registry() if op.noun == "contact"
    }
    process_run = out["made"].meta["krabs/run_id"]
    assert out["listed"].meta["krabs/run_id"] == process_run
    assert out["replay"].meta["krabs/replayed"] is True
    assert out["replay"].structured_content == out["again"].structured_content
    assert out["dry"].structured_content["dry_run"] is True
    assert out["bad"].is_error and out["bad"].structured_content["error"]["param"] == "id"
    assert out["ghost"].structured_content["error"]["code"] == "not_found"
    assert [c["display_name"] for c in out["listed"].structured_content["data"]] == ["Stdio"] * 2
    store = Store(f"sqlite:///{tmp_path / 'krabs.db'}")
    try:
        row = run_row(store, process_run)
        assert row is not None and row.name == "mcp stdio" and row.status == "open"
    finally:
        store.dispose()


def test_stdio_refuses_a_bad_key_or_toolset(tmp_path):
    bad_key = subprocess.run(
        [KRABS, "mcp"],
        env=stdio_env(tmp_path, KRABS_API_KEY="krabs_sk_wrong"),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
    )
    assert bad_key.returncode == 2 and "KRABS_API_KEY" in bad_key.stderr
    assert bad_key.stdout == ""
    bad_set = subprocess.run(
        [KRABS, "mcp", "--toolsets", "spaceship"],
        env=stdio_env(tmp_path),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
    )
    assert bad_set.returncode == 2 and "spaceship" in bad_set.stderr
