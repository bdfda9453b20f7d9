"""The Python SDK against a real live server: every operation of the registry round-trips through
it (via its compliance scenario), idempotent retries reuse one key, errors are typed."""

from __future__ import annotations

import asyncio
import json
import uuid
from typing import Any

import httpx
import pytest

from krabs import Client
from krabs.client import AsyncClient
from krabs.client_errors import (
    AuthError,
    IdempotencyError,
    InvalidArgument,
    KrabsAPIError,
    KrabsConnectionError,
    NotFound,
)
from krabs.compliance.scenarios import load_scenarios
from krabs.contract.registry import load_registry

REGISTRY = load_registry()
SCENARIOS = load_scenarios()


@pytest.fixture
def client(live, account):
    with Client(live.url, account.secret) as c:
        yield c


def _email() -> str:
    return f"sdk{uuid.uuid4().hex[:10]}@example.com"


@pytest.mark.parametrize("op", list(REGISTRY), ids=lambda op: op.name)
def test_every_operation_round_trips_through_the_sdk(op, client):
    assert op.name in SCENARIOS, f"{op.name} has no scenario"
    args = SCENARIOS[op.name](lambda name, a: client.call(name, a))
    noun, verb = op.name.split(".", 1)
    # The generated method, by attribute: client.contact.create(**args).
    result = getattr(getattr(client, noun), verb)(**args)
    op.output.model_validate(result)
    if op.destructive:
        assert result["undo_token"].startswith("undo_")


def test_operations_come_from_the_server_schema(client):
    assert set(client.schema["operations"]) == set(REGISTRY.names())
    assert "upsert" in dir(client.contact) and "contact" in dir(client)
    profile = client.businessProfile.get()
    assert profile["object"] == "business_profile" or "currency" in profile
    assert "Errors:" in (client.contact.upsert.__doc__ or "")
    with pytest.raises(AttributeError, match="nouns"):
        client.nosuchnoun  # noqa: B018
    with pytest.raises(AttributeError, match="contact has"):
        client.contact.explode  # noqa: B018


def test_upsert_then_call_by_name(client):
    identity = {"kind": "email", "value": _email()}
    first = client.contact.upsert(identity=identity, given_name="Ada")
    assert first["created"] is True and first["id"].startswith("ct_")
    again = client.call("contact.upsert", {"identity": identity, "given_name": "Ada"})
    assert again["id"] == first["id"] and again["created"] is False
    assert client.contact.get(id=first["id"])["given_name"] == "Ada"
    assert client.contact.get({"id": first["id"]})["id"] == first["id"]


def test_dry_run_persists_nothing(client):
    email = _email()
    plan = client.contact.create(
        display_name="Plan", identities=[{"kind": "email", "value": email}], dry_run=True
    )
    assert plan["dry_run"] is True and plan["result"]["display_name"] == "Plan"
    with pytest.raises(NotFound):
        client.contact.find_by_identity(identity={"kind": "email", "value": email})


def test_same_key_replays_instead_of_writing_twice(client):
    key = f"k-{uuid.uuid4().hex}"
    args = {"display_name": "Once", "identities": [{"kind": "email", "value": _email()}]}
    first = client.request("contact.create", args, idempotency_key=key)
    second = client.request("contact.create", args, idempotency_key=key)
    assert not first.replayed and second.replayed
    assert second.result == first.result and second.action_id == first.action_id
    assert second.idempotency_key == key
    with pytest.raises(IdempotencyError) as info:
        client.call("contact.create", {**args, "display_name": "Other"}, idempotency_key=key)
    assert info.value.code == "idempotency_key_reused" and info.value.status == 422


class DropFirstResponse(httpx.HTTPTransport):
    """The request reaches the server and is executed, but the first response is lost on the way
    back, as on a flaky network. Records the Idempotency-Key of every attempt."""

    def __init__(self, fail_times: int = 1) -> None:
        super().__init__()
        self.fail_times = fail_times
        self.keys: list[str | None] = []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        response = super().handle_request(request)
        if request.url.path.endswith("/v1/schema"):
            return response
        self.keys.append(request.headers.get("idempotency-key"))
        response.read()
        if len(self.keys) <= self.fail_times:
            raise httpx.ReadError("connection reset by peer", request=request)
        return response


def test_a_retry_after_a_dropped_response_reuses_the_key_and_writes_once(live, account):
    transport = DropFirstResponse()
    email = _email()
    with Client(live.url, account.secret, transport=transport) as c:
        response = c.request("contact.create", {"identities": [{"kind": "email", "value": email}]})
        assert response.replayed, "the retry must get the stored response, not write again"
        assert len(transport.keys) == 2 and transport.keys[0] == transport.keys[1]
        assert transport.keys[0] and transport.keys[0].startswith("sdk_")
        actions = c.call("action.list", {"target": response.result["id"]})
        assert [a["op"] for a in actions["data"]] == ["contact.create"]
        # Reads carry no key; each logical call gets its own key.
        c.call("contact.get", {"id": response.result["id"]})
        c.call("contact.update", {"id": response.result["id"], "title": "CEO"})
    assert transport.keys[2:4] == [None, None]  # action.list, contact.get
    assert transport.keys[4] not in (None, transport.keys[0])


def _mock_schema(ops: dict[str, bool]) -> dict[str, Any]:
    return {
        "operations": {name: {"mutates": m, "input": {}, "errors": []} for name, m in ops.items()}
    }


def test_429_and_5xx_are_retried_honouring_retry_after():
    seen: list[tuple[str, str | None]] = []
    replies = [
        httpx.Response(
            429,
            json={"error": {"code": "rate_limited", "message": "slow"}},
            headers={"Retry-After": "0"},
        ),
        httpx.Response(503, text="upstream down"),
        httpx.Response(200, json={"id": "ct_1"}),
    ]

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/v1/schema":
            return httpx.Response(200, json=_mock_schema({"contact.create": True}))
        seen.append((request.url.path, request.headers.get("idempotency-key")))
        return replies[len(seen) - 1]

    with Client("http://krabs.test", "krabs_sk_x", transport=httpx.MockTransport(handler)) as c:
        assert c.call("contact.create", {}) == {"id": "ct_1"}
    assert len(seen) == 3 and len({key for _, key in seen}) == 1


def test_wait_sends_prefer_and_gives_the_call_that_much_longer():
    seen: list[tuple[str | None, Any]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/v1/schema":
            return httpx.Response(200, json=_mock_schema({"contact.delete": True}))
        seen.append((request.headers.get("prefer"), request.extensions["timeout"]["read"]))
        return httpx.Response(200, json={"deleted": True})

    mock = httpx.MockTransport(handler)
    with Client("http://krabs.test", "k", timeout=10, transport=mock) as c:
        assert c.call("contact.delete", {"id": "ct_1"}, wait=2.5) == {"deleted": True}
        c.call("contact.delete", {"id": "ct_1"})
        for bad in (-1, float("nan"), float("inf"), 1e9):
            with pytest.raises(ValueError, match="wait"):
                c.call("contact.delete", {"id": "ct_1"}, wait=bad)
    assert seen == [("wait=3", 13), (None, 10)]


def test_retries_are_bounded():
    attempts = []

    def handler(request: httpx.Request) -> httpx.Response:
        attempts.append(request.url.path)
        raise httpx.ConnectError("refused", request=request)

    with (
        Client(
            "http://krabs.test", "k", max_retries=2, transport=httpx.MockTransport(handler)
        ) as c,
        pytest.raises(KrabsConnectionError) as info,
    ):
        c.schema  # noqa: B018
    assert len(attempts) == 3 and info.value.code == "unavailable"
    assert info.value.exit_code == 9


def test_client_errors_are_not_retried():
    calls = []

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/v1/schema":
            return httpx.Response(200, json=_mock_schema({"contact.get": False}))
        calls.append(1)
        return httpx.Response(
            404, json={"error": {"code": "not_found", "message": "no", "param": "id"}}
        )

    mock = httpx.MockTransport(handler)
    with Client("http://krabs.test", "k", transport=mock) as c, pytest.raises(NotFound):
        c.call("contact.get", {"id": "ct_1"})
    assert calls == [1]


def test_typed_errors_carry_code_message_param_and_status(client, live):
    with pytest.raises(NotFound) as nf:
        client.contact.get(id="ct_01HG7Z4X9Q8M2N7P3R5T6V8W")
    assert (nf.value.code, nf.value.param, nf.value.status) == ("not_found", "id", 404)
    assert nf.value.exit_code == 3 and "ct_01HG7Z4X9Q8M2N7P3R5T6V8W" in nf.value.message
    with pytest.raises(InvalidArgument) as bad:
        client.contact.create(stage="sold")
    assert bad.value.code == "invalid_argument" and bad.value.param == "stage"
    assert "lead" in bad.value.message and bad.value.request_id
    with pytest.raises(InvalidArgument) as unknown:
        client.call("contact.create", {"nickname": "x"})
    assert unknown.value.param == "nickname"
    with pytest.raises(NotFound) as no_op:
        client.call("contact.explode", {})
    assert no_op.value.code == "unknown_operation"
    with pytest.raises(AuthError) as auth:
        Client(live.url, "krabs_sk_unknownunknownunknownunknown00").call("contact.list")
    assert auth.value.code == "unauthenticated" and auth.value.status == 401
    assert isinstance(auth.value, KrabsAPIError)


def test_a_read_only_key_gets_forbidden(client, live):
    key = client.api_key.create(name="reader", scopes=["read"])
    with Client(live.url, key["secret"]) as reader:
        reader.contact.list()
        with pytest.raises(AuthError) as info:
            reader.contact.create(display_name="Nope")
    assert info.value.code == "forbidden" and info.value.status == 403


def test_url_and_key_from_the_environment(live, account, monkeypatch):
    monkeypatch.setenv("KRABS_URL", live.url)
    monkeypatch.setenv("KRABS_API_KEY", account.secret)
    with Client() as c:
        assert c.contact.list(limit=1)["object"] == "list"
    monkeypatch.delenv("KRABS_URL")
    with pytest.raises(ValueError, match="KRABS_URL"):
        Client()


def test_async_client_has_the_same_surface(live, account):
    async def main() -> None:
        bare = AsyncClient(live.url, account.secret)
        with pytest.raises(AttributeError, match="load_schema"):
            bare.contact  # noqa: B018
        await bare.load_schema()
        assert (await bare.contact.list(limit=1))["object"] == "list"
        await bare.aclose()
        async with AsyncClient(live.url, account.secret) as c:
            identity = {"kind": "email", "value": _email()}
            up = await c.contact.upsert(identity=identity, family_name="Hopper")
            assert up["created"] is True
            got = await c.call("contact.get", {"id": up["id"]})
            assert got["family_name"] == "Hopper"
            plan = await c.contact.update(id=up["id"], title="x", dry_run=True)
            assert plan["dry_run"] is True and plan["result"]["title"] == "x"
            assert (await c.contact.get(id=up["id"]))["title"] is None
            key = f"a-{uuid.uuid4().hex}"
            one = await c.request("contact.delete", {"id": up["id"]}, idempotency_key=key)
            two = await c.request("contact.delete", {"id": up["id"]}, idempotency_key=key)
            assert two.replayed and two.result == one.result
            with pytest.raises(NotFound):
                await c.contact.get(id=up["id"])
            await c.businessProfile.get()

    asyncio.run(main())


def test_the_schema_is_whatever_the_server_says():
    """A new server operation is callable without an SDK release."""

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/v1/schema":
            return httpx.Response(200, json=_mock_schema({"widget.spin": True}))
        return httpx.Response(200, json={"spun": json.loads(request.content)["speed"]})

    with Client("http://krabs.test", "k", transport=httpx.MockTransport(handler)) as c:
        assert c.widget.spin(speed=3) == {"spun": 3}
