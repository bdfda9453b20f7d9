"""Hostile input over real HTTP, on SQLite and PostgreSQL: malformed bodies, wrong types, unknown
fields, bad credentials, oversized payloads, odd routes, unicode and SQL-looking text, rate limits.

Every response a client of this module receives passes through ``audit_response``: never a 500,
never a traceback, and every error is the JSON envelope with the status its code is registered at.
Every rejected write is checked against a snapshot of the database (its account's rows, and every
table without an account): nothing partial lands.
"""

from __future__ import annotations

import json
import random
import re
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from conftest import LiveServer, snapshot
from conftest import test_settings as make_settings
from krabs.accounts import NewAccount
from krabs.contract.errors import STATUS_BY_CODE
from krabs.engine import Engine
from krabs.store.db import Store
from krabs.store.tables import api_keys

Json = dict[str, Any]
ENVELOPE_KEYS = {"code", "message", "param", "op", "request_id"}
#: Placeholder for the id of the ``target`` contact inside parametrized argument tables.
CID = "<target contact id>"
MIB = 1024 * 1024


# -- helpers ---------------------------------------------------------------------------------------


def audit_response(response: httpx.Response) -> None:
    """The invariants of every response: no 5xx, no traceback, errors in the typed envelope."""
    response.read()
    where = f"{response.request.method} {response.request.url.path} -> {response.status_code}"
    text = response.text
    assert response.status_code < 500, f"{where}: {text[:500]}"
    assert "Traceback" not in text, f"{where}: {text[:500]}"
    if response.status_code < 400:
        return
    assert response.headers.get("content-type", "").startswith("application/json"), where
    body = response.json()
    assert set(body) == {"error"}, f"{where}: {body}"
    error = body["error"]
    assert set(error) >= ENVELOPE_KEYS, f"{where}: envelope lacks {ENVELOPE_KEYS - set(error)}"
    assert error["code"] in STATUS_BY_CODE, f"{where}: unregistered code {error['code']!r}"
    assert STATUS_BY_CODE[error["code"]] == response.status_code, (
        f"{where}: code {error['code']!r} is registered at {STATUS_BY_CODE[error['code']]}"
    )
    assert isinstance(error["message"], str) and error["message"], where


def client(base_url: str, secret: str | None) -> httpx.Client:
    headers = {"Authorization": f"Bearer {secret}"} if secret else {}
    return httpx.Client(
        base_url=base_url,
        headers=headers,
        timeout=30,
        event_hooks={"request": [], "response": [audit_response]},
    )


def fill(value: Any, cid: str) -> Any:
    """``value`` with every ``CID`` placeholder replaced by ``cid``."""
    if value == CID:
        return cid
    if isinstance(value, dict):
        return {k: fill(v, cid) for k, v in value.items()}
    if isinstance(value, list):
        return [fill(v, cid) for v in value]
    return value


def error_of(response: httpx.Response, status: int, code: str) -> Json:
    assert response.status_code == status, f"expected {status} {code}, got {response.text[:500]}"
    error: Json = response.json()["error"]
    assert error["code"] == code, error
    return error


def data(response: httpx.Response) -> Json:
    assert response.status_code == 200, response.text[:500]
    body: Json = response.json()
    return body


def rejects_without_write(
    store: Store,
    account_id: str,
    send: Callable[[], httpx.Response],
    status: int,
    code: str,
    param: str | None = None,
) -> Json:
    """Send a hostile write as ``account_id`` (or with one of its keys); assert its error (and
    ``param`` when given) and that account's rows of the database unchanged."""
    before = snapshot(store, account_id)
    response = send()
    after = snapshot(store, account_id)
    error = error_of(response, status, code)
    if param is not None:
        assert error["param"] == param, error
    assert before == after, "a rejected request changed the database"
    return error


def all_hold(checks: dict[str, Callable[[], object]]) -> None:
    """Run every check and report all that fail, not just the first."""
    failures: list[str] = []
    for label, check in checks.items():
        try:
            check()
        except AssertionError as exc:
            failures.append(f"{label}: {' '.join(str(exc).split())[:400]}")
    assert not failures, "\n".join(failures)


def case_id(op: str, args: Json) -> str:
    return f"{op}:{json.dumps(args)[:48]}"


def post_raw(api: httpx.Client, op: str, raw: bytes) -> httpx.Response:
    return api.post(f"/v1/{op}", content=raw, headers={"Content-Type": "application/json"})


# -- fixtures --------------------------------------------------------------------------------------


@pytest.fixture
def api(http: httpx.Client) -> httpx.Client:
    """The account's admin client, with every response audited."""
    http.event_hooks = {**http.event_hooks, "response": [audit_response]}
    return http


@pytest.fixture
def anon(live: LiveServer) -> Iterator[httpx.Client]:
    with client(live.url, None) as c:
        yield c


@pytest.fixture
def target(api: httpx.Client) -> str:
    """A contact to update or attach identities to. Creating it also opens the key's default run
    and notes the key's last use, so a later rejected call has no legitimate write left to make."""
    created = data(
        api.post(
            "/v1/contact.create",
            json={"display_name": "Target", "identities": [{"kind": "email", "value": "t@x.dev"}]},
        )
    )
    return str(created["id"])


def new_key(api: httpx.Client, scopes: list[str], **extra: Any) -> Json:
    return data(api.post("/v1/api_key.create", json={"name": "hostile", "scopes": scopes, **extra}))


# -- 1. bodies that are not a JSON object ----------------------------------------------------------

INVALID_JSON: dict[str, bytes] = {
    "open-brace": b"{",
    "bare-word": b"nul",
    "trailing-garbage": b'{"display_name": "x"} x',
    "two-objects": b"{}{}",
    "single-quotes": b"{'display_name': 'x'}",
    "trailing-comma": b'{"display_name": "x",}',
    "nan": b"NaN",
    "nan-inside": b'{"attributes": {"n": NaN}}',
    "infinity": b"Infinity",
    "minus-infinity-inside": b'{"attributes": {"n": -Infinity}}',
    "deep-open-brackets": b"[" * 100_000,
    "deep-balanced-brackets": b"[" * 100_000 + b"]" * 100_000,
    "invalid-utf8": b'{"display_name": "\xff\xfe"}',
    "truncated-utf8": b'{"display_name": "\xc3"}',
    "overlong-utf8": b'{"display_name": "\xc0\xaf"}',
    "utf16-body": '{"display_name": "x"}'.encode("utf-16"),
    "huge-integer": b'{"attributes": {"n": 1' + b"0" * 5000 + b"}}",
}


@pytest.mark.parametrize("raw", INVALID_JSON.values(), ids=INVALID_JSON.keys())
def test_invalid_json_is_400_and_writes_nothing(
    api: httpx.Client, store: Store, account: NewAccount, target: str, raw: bytes
) -> None:
    rejects_without_write(
        store, account.account_id, lambda: post_raw(api, "contact.create", raw), 400, "invalid_json"
    )


NOT_AN_OBJECT: dict[str, bytes] = {
    "array": b"[]",
    "array-of-object": b'[{"display_name": "x"}]',
    "string": b'"display_name"',
    "number": b"42",
    "true": b"true",
    "null": b"null",
}


@pytest.mark.parametrize("raw", NOT_AN_OBJECT.values(), ids=NOT_AN_OBJECT.keys())
def test_non_object_body_is_invalid_argument(
    api: httpx.Client, store: Store, account: NewAccount, target: str, raw: bytes
) -> None:
    rejects_without_write(
        store,
        account.account_id,
        lambda: post_raw(api, "contact.create", raw),
        400,
        "invalid_argument",
    )


@pytest.mark.parametrize("raw", [b"", b"  \r\n\t "], ids=["empty", "whitespace"])
def test_empty_body_on_a_read_without_required_args_is_ok(api: httpx.Client, raw: bytes) -> None:
    assert data(post_raw(api, "contact.list", raw))["object"] == "list"
    assert data(api.post("/v1/contact.list", content=raw))["object"] == "list"


# -- 2./3. wrong types, out-of-range values, unknown fields ----------------------------------------

BAD_ARGS: list[tuple[str, Json, str | None]] = [
    ("contact.create", {"stage": 5}, "stage"),
    ("contact.create", {"stage": "vip"}, "stage"),
    ("contact.create", {"stage": ["lead"]}, "stage"),
    ("contact.create", {"display_name": ["a"]}, "display_name"),
    ("contact.create", {"display_name": True}, "display_name"),
    ("contact.create", {"display_name": 7}, "display_name"),
    ("contact.create", {"display_name": ""}, "display_name"),
    ("contact.create", {"display_name": "   "}, "display_name"),
    ("contact.create", {"display_name": "two\nlines"}, "display_name"),
    ("contact.create", {"company": {"name": "x"}}, "company"),
    ("contact.create", {"owner": False}, "owner"),
    ("contact.create", {"attributes": [1, 2]}, "attributes"),
    ("contact.create", {"attributes": "x"}, "attributes"),
    ("contact.create", {"identities": "x"}, "identities"),
    ("contact.create", {"identities": {"kind": "email"}}, "identities"),
    ("contact.create", {"identities": ["a@b.dev"]}, "identities.0"),
    ("contact.create", {"identities": [{"kind": "email", "value": 5}]}, "identities.0.value"),
    ("contact.create", {"identities": [{"kind": "email", "value": None}]}, "identities.0.value"),
    ("contact.create", {"identities": [{"kind": "email", "value": ""}]}, "identities.0.value"),
    ("contact.create", {"identities": [{"kind": "fax", "value": "1"}]}, "identities.0.kind"),
    ("contact.create", {"identities": [{"kind": "email"}]}, "identities.0.value"),
    (
        "contact.create",
        {"identities": [{"kind": "email", "value": "a@b.dev", "primary": "yes"}]},
        "identities.0.primary",
    ),
    (
        "contact.create",
        {"identities": [{"kind": "email", "value": "not-an-email"}]},
        "identities.0.value",
    ),
    ("contact.create", {"identities": [{"kind": "email", "value": "a@b.dev"}] * 51}, "identities"),
    ("contact.create", {"display_name": "x", "dry_run": "yes"}, "dry_run"),
    ("contact.update", {"id": CID, "stage": 5}, "stage"),
    ("contact.update", {"id": CID, "display_name": True}, "display_name"),
    ("contact.update", {"id": 5, "display_name": "x"}, "id"),
    ("contact.update", {"id": "'; DROP TABLE contacts;--", "display_name": "x"}, "id"),
    ("contact.update", {"display_name": "x"}, "id"),
    ("contact.update", {"id": CID}, None),
    ("identity.add", {"contact_id": CID, "kind": "email", "value": ["a@b.dev"]}, "value"),
    ("identity.add", {"contact_id": CID, "kind": 1, "value": "a@b.dev"}, "kind"),
    (
        "identity.add",
        {"contact_id": CID, "kind": "email", "value": "a@b.dev", "primary": 1},
        "primary",
    ),
    ("identity.add", {"contact_id": CID, "kind": "phone", "value": "12"}, "value"),
    ("identity.add", {"contact_id": [CID], "kind": "email", "value": "a@b.dev"}, "contact_id"),
    (
        "contact.find_by_identity",
        {"identity": {"kind": "email", "value": "nope"}},
        "identity.value",
    ),
    ("contact.list", {"limit": "ten"}, "limit"),
    ("contact.list", {"limit": "10"}, "limit"),
    ("contact.list", {"limit": True}, "limit"),
    ("contact.list", {"limit": 0}, "limit"),
    ("contact.list", {"limit": -1}, "limit"),
    ("contact.list", {"limit": 101}, "limit"),
    ("contact.list", {"limit": 1.5}, "limit"),
    ("contact.list", {"limit": 1e308}, "limit"),
    ("contact.list", {"limit": None}, "limit"),
    ("contact.list", {"q": 5}, "q"),
    ("contact.list", {"q": ""}, "q"),
    ("contact.list", {"q": "x" * 201}, "q"),
    ("contact.list", {"stage": "vip"}, "stage"),
    ("contact.list", {"updated_since": "yesterday"}, "updated_since"),
    ("contact.list", {"updated_since": "2020-13-45"}, "updated_since"),
    ("contact.list", {"updated_since": "2020-02-30T10:00:00Z"}, "updated_since"),
    ("contact.list", {"updated_since": "9999-12-31T23:59:59-01:00"}, "updated_since"),
    ("contact.list", {"starting_after": ["ct_x"]}, "starting_after"),
    ("api_key.create", {"name": "k", "expires_at": "2020-02-30"}, "expires_at"),
]


@pytest.mark.parametrize(
    ("op", "args", "param"), BAD_ARGS, ids=[case_id(o, a) for o, a, _ in BAD_ARGS]
)
def test_wrong_types_and_ranges_name_the_param(
    api: httpx.Client,
    store: Store,
    account: NewAccount,
    target: str,
    op: str,
    args: Json,
    param: str | None,
) -> None:
    error = rejects_without_write(
        store,
        account.account_id,
        lambda: api.post(f"/v1/{op}", json=fill(args, target)),
        400,
        "invalid_argument",
    )
    assert error["param"] == param, error
    assert error["op"] == op


UNKNOWN_FIELDS: list[tuple[str, Json, str, str]] = [
    ("contact.create", {"display_nam": "x"}, "display_nam", "display_name"),
    ("contact.create", {"display_name": "x", "id": "ct_1"}, "id", "identities"),
    (
        "contact.create",
        {"identities": [{"kind": "email", "value": "a@b.dev", "valeu": "x"}]},
        "identities.0.valeu",
        "value",
    ),
    ("contact.update", {"id": CID, "emial": "a@b.dev"}, "emial", "display_name"),
    ("identity.add", {"contact_id": CID, "kind": "email", "value": "a@b.dev", "x": 1}, "x", "kind"),
    ("contact.list", {"limt": 5}, "limt", "limit"),
    ("contact.list", {"🦀": 1}, "🦀", "limit"),
]


@pytest.mark.parametrize(
    ("op", "args", "param", "accepted"), UNKNOWN_FIELDS, ids=[u[2] for u in UNKNOWN_FIELDS]
)
def test_unknown_fields_are_named_and_accepted_ones_listed(
    api: httpx.Client,
    store: Store,
    account: NewAccount,
    target: str,
    op: str,
    args: Json,
    param: str,
    accepted: str,
) -> None:
    error = rejects_without_write(
        store,
        account.account_id,
        lambda: api.post(f"/v1/{op}", json=fill(args, target)),
        400,
        "invalid_argument",
        param,
    )
    assert "accepted" in error["message"] and accepted in error["message"], error


# -- 4./5. authentication and scopes ---------------------------------------------------------------

BAD_AUTH: dict[str, str | bytes | None] = {
    "missing": None,
    "empty": "",
    "bearer-alone": "Bearer",
    "basic": "Basic dXNlcjpwYXNzd29yZA==",
    "basic-with-real-secret": "Basic {secret}",
    "token-with-real-secret": "Token {secret}",
    "real-secret-without-scheme": "{secret}",
    "garbage": "Bearer garbage",
    "unknown-krabs-key": "Bearer krabs_sk_" + "A" * 32,
    "prefix-only": "Bearer krabs_sk_",
    "real-secret-plus-char": "Bearer {secret}x",
    "real-secret-then-word": "Bearer {secret} extra",
    "10k-chars": "Bearer krabs_sk_" + "a" * 10_000,
    "unicode": "Bearer krabs_sk_ünïcødé🦀".encode(),
    "latin1-bytes": b"Bearer krabs_sk_\xff\xfe\xe9",
}
GUARDED: list[tuple[str, str]] = [
    ("POST", "/v1/contact.create"),
    ("POST", "/v1/contact.list"),
    ("POST", "/v1/contact.explode"),
    ("GET", "/v1/schema"),
    ("GET", "/v1/openapi.json"),
    ("GET", "/docs"),
]


@pytest.mark.parametrize("header", BAD_AUTH.values(), ids=BAD_AUTH.keys())
def test_bad_credentials_are_401_everywhere(
    anon: httpx.Client, store: Store, account: NewAccount, header: str | bytes | None
) -> None:
    headers: dict[str, str | bytes] = {}
    if isinstance(header, str):
        headers["Authorization"] = header.replace("{secret}", account.secret)
    elif isinstance(header, bytes):
        headers["Authorization"] = header

    def check(method: str, path: str) -> None:
        body = {"display_name": "x"} if method == "POST" else None
        response = anon.request(method, path, json=body, headers=headers)
        assert error_of(response, 401, "unauthenticated")["param"] == "Authorization"

    before = snapshot(store, account.account_id)
    all_hold({f"{m} {p}": lambda m=m, p=p: check(m, p) for m, p in GUARDED})
    assert snapshot(store, account.account_id) == before


def test_scheme_is_case_insensitive(anon: httpx.Client, account: NewAccount) -> None:
    headers = {"Authorization": f"bEaReR {account.secret}"}
    assert data(anon.post("/v1/contact.list", json={}, headers=headers))["object"] == "list"


def test_healthz_needs_no_key(anon: httpx.Client) -> None:
    body = data(anon.get("/healthz"))
    assert body["ok"] is True


@pytest.mark.parametrize("path", ["/v1/schema", "/v1/openapi.json", "/docs"])
def test_documents_need_a_key_and_serve_with_one(
    api: httpx.Client, anon: httpx.Client, path: str
) -> None:
    error_of(anon.get(path), 401, "unauthenticated")
    response = api.get(path)
    assert response.status_code == 200
    if path == "/docs":
        assert response.headers["content-type"].startswith("text/html")
        assert "contact.create" in response.text
    else:
        assert "contact.create" in json.dumps(response.json())


def test_revoked_key_is_401_at_once(
    api: httpx.Client, anon: httpx.Client, store: Store, account: NewAccount, target: str
) -> None:
    key = new_key(api, ["read", "write"])
    auth = {"Authorization": f"Bearer {key['secret']}"}
    data(anon.post("/v1/contact.list", json={}, headers=auth))  # cached as valid now
    data(api.post("/v1/api_key.revoke", json={"id": key["id"]}))
    for op in ("contact.list", "contact.create"):
        error = rejects_without_write(
            store,
            account.account_id,
            lambda op=op: anon.post(f"/v1/{op}", json={"display_name": "x"}, headers=auth),
            401,
            "unauthenticated",
        )
        assert "revoked" in error["message"]


def test_expired_key_is_401(
    api: httpx.Client, anon: httpx.Client, store: Store, account: NewAccount, target: str
) -> None:
    past = api.post(
        "/v1/api_key.create", json={"name": "old", "expires_at": "2001-01-01T00:00:00Z"}
    )
    assert past.status_code == 400 and past.json()["error"]["param"] == "expires_at"
    created = api.post(
        "/v1/api_key.create", json={"name": "soon", "expires_at": "2999-01-01T00:00:00Z"}
    )
    key = data(created)
    with store.transaction() as conn:  # the key's life runs out (it was never used: not cached)
        conn.execute(
            sa.update(api_keys)
            .where(api_keys.c.id == key["id"])
            .values(expires_at="2001-01-01T00:00:00.000000Z")
        )
    auth = {"Authorization": f"Bearer {key['secret']}"}
    error = rejects_without_write(
        store,
        account.account_id,
        lambda: anon.post("/v1/contact.create", json={"display_name": "x"}, headers=auth),
        401,
        "unauthenticated",
    )
    assert "expired" in error["message"]


SCOPE_CASES: list[tuple[list[str], str, Json]] = [
    (["read"], "contact.create", {"display_name": "x"}),
    (["read"], "contact.update", {"id": CID, "display_name": "x"}),
    (["read"], "identity.add", {"contact_id": CID, "kind": "email", "value": "s@x.dev"}),
    (["read", "write"], "api_key.create", {"name": "escalate", "scopes": ["admin"]}),
    (["read", "write"], "api_key.list", {}),
]


@pytest.mark.parametrize(
    ("scopes", "op", "args"), SCOPE_CASES, ids=[f"{'+'.join(s)}:{o}" for s, o, _ in SCOPE_CASES]
)
def test_missing_scope_is_403(
    api: httpx.Client,
    anon: httpx.Client,
    store: Store,
    account: NewAccount,
    target: str,
    scopes: list[str],
    op: str,
    args: Json,
) -> None:
    auth = {"Authorization": f"Bearer {new_key(api, scopes)['secret']}"}
    data(anon.post("/v1/contact.list", json={}, headers=auth))  # the key works for reads
    rejects_without_write(
        store,
        account.account_id,
        lambda: anon.post(f"/v1/{op}", json=fill(args, target), headers=auth),
        403,
        "forbidden",
    )


# -- 6. size and media type ------------------------------------------------------------------------


def _chunks(total: int, size: int = 64 * 1024) -> Iterator[bytes]:
    yield b'{"display_name": "'
    for _ in range(total // size):
        yield b"a" * size
    yield b'"}'


def test_oversized_body_with_content_length_is_413(
    api: httpx.Client, store: Store, account: NewAccount, target: str
) -> None:
    body = json.dumps({"display_name": "x", "attributes": {"s": "a" * (2 * MIB)}}).encode()
    rejects_without_write(
        store,
        account.account_id,
        lambda: post_raw(api, "contact.create", body),
        413,
        "payload_too_large",
    )


def test_oversized_chunked_body_is_413(
    api: httpx.Client, store: Store, account: NewAccount, target: str
) -> None:
    def send() -> httpx.Response:
        response = api.post(
            "/v1/contact.create",
            content=_chunks(2 * MIB),
            headers={"Content-Type": "application/json"},
        )
        assert "content-length" not in response.request.headers
        return response

    rejects_without_write(store, account.account_id, send, 413, "payload_too_large")


@pytest.mark.parametrize(
    "ctype", ["text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x"]
)
def test_wrong_content_type_is_415(
    api: httpx.Client, store: Store, account: NewAccount, target: str, ctype: str
) -> None:
    rejects_without_write(
        store,
        account.account_id,
        lambda: api.post(
            "/v1/contact.create", content=b'{"display_name": "x"}', headers={"Content-Type": ctype}
        ),
        415,
        "unsupported_media_type",
    )


# -- 7. routes -------------------------------------------------------------------------------------


@pytest.mark.parametrize("op", ["contact.explode", "contact", "CONTACT.CREATE", "contact.create "])
def test_unknown_operation_is_404(
    api: httpx.Client, store: Store, account: NewAccount, op: str
) -> None:
    error = rejects_without_write(
        store,
        account.account_id,
        lambda: api.post(f"/v1/{op}", json={}),
        404,
        "unknown_operation",
        "op",
    )
    assert error["op"] == op


@pytest.mark.parametrize(
    ("method", "path"),
    [("GET", "/v1/contact.create"), ("PUT", "/v1/contact.create"), ("DELETE", "/v1/schema")],
)
def test_wrong_method_is_405_json(api: httpx.Client, method: str, path: str) -> None:
    response = api.request(method, path)
    assert response.status_code == 405
    assert "error" in response.json()
    assert response.headers.get("allow"), "a 405 must say which methods are allowed (RFC 9110)"


@pytest.mark.parametrize("path", ["/nowhere", "/v1", "/v1/contact.create/x", "/v2/contact.create"])
def test_unknown_route_is_404_json(api: httpx.Client, path: str) -> None:
    response = api.post(path, json={})
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"


# -- 8. unicode, control characters, lengths, numbers, SQL-looking text ----------------------------

VERBATIM: dict[str, str] = {
    "emoji": "Krabs 🦀 family 👩‍👩‍👧‍👦 flag 🇳🇿",
    "rtl": "مرحبا بالعالم שלום עולם",
    "combining": "e\u0301 n\u0303 Z\u0324\u0354\u0367\u0311",
    "zwj": "a\u200db\u200cc\u2060d",
    "cjk": "東京都渋谷区 서울 こんにちは",
    "astral": "𝕳𝖊𝖑𝖑𝖔 𠜎𠜱 𓀀",
    "bidi-override": "\u202eevil\u202c end",
    "nfd-vs-nfc": "Cafe\u0301 Café",
    "line-separator": "a\u2028b\u2029c",
    "bom-inside": "a\ufeffb",
}


@pytest.mark.parametrize("text", VERBATIM.values(), ids=VERBATIM.keys())
def test_unicode_is_stored_and_returned_verbatim(api: httpx.Client, text: str) -> None:
    args = {
        "display_name": text,
        "company": text,
        "title": text,
        "attributes": {text: text, "nested": {"list": [text, {text: text}]}},
        "identities": [{"kind": "other", "value": text, "source": text[:80]}],
    }
    created = data(api.post("/v1/contact.create", json=args))
    fetched = data(api.post("/v1/contact.get", json={"id": created["id"]}))
    for body in (created, fetched):
        assert body["display_name"] == text
        assert body["company"] == text
        assert body["title"] == text
        assert body["attributes"] == args["attributes"]
        assert body["identities"][0]["value"] == text
    found = data(api.post("/v1/contact.list", json={"q": text}))["data"]
    assert created["id"] in [c["id"] for c in found]


def test_escaped_surrogate_pair_is_one_character(api: httpx.Client) -> None:
    raw = b'{"display_name": "crab \\ud83e\\udd80"}'
    assert data(post_raw(api, "contact.create", raw))["display_name"] == "crab 🦀"


@pytest.mark.parametrize("name", ["Ärger Ωmega", "ÉCOLE Ŝtrand Ğ"], ids=["umlaut", "accented"])
def test_search_is_case_insensitive_beyond_ascii(api: httpx.Client, name: str) -> None:
    created = data(api.post("/v1/contact.create", json={"display_name": name}))
    for q in (name.lower(), name.upper()):
        found = data(api.post("/v1/contact.list", json={"q": q}))["data"]
        assert [c["id"] for c in found] == [created["id"]], f"q={q!r}"


CONTROLS = ["\u0000", "\u0007", "\u001b", "\u007f", "\u009b"]
CONTROL_PLACES: list[tuple[str, Callable[[str], Json], str]] = [
    ("contact.create", lambda s: {"display_name": f"a{s}b"}, "display_name"),
    ("contact.create", lambda s: {"company": f"a{s}b"}, "company"),
    ("contact.create", lambda s: {"attributes": {f"k{s}": 1}}, "attributes"),
    ("contact.create", lambda s: {"attributes": {"a": {"b": ["ok", f"x{s}"]}}}, "attributes.a.b.1"),
    (
        "contact.create",
        lambda s: {"identities": [{"kind": "other", "value": f"v{s}"}]},
        "identities.0.value",
    ),
    (
        "contact.create",
        lambda s: {"identities": [{"kind": "email", "value": "c@x.dev", "source": f"s{s}"}]},
        "identities.0.source",
    ),
    ("contact.update", lambda s: {"id": CID, "owner": f"a{s}b"}, "owner"),
    (
        "contact.update",
        lambda s: {"id": CID, "attributes": {"deep": [[f"{s}"]]}},
        "attributes.deep.0.0",
    ),
    ("identity.add", lambda s: {"contact_id": CID, "kind": "other", "value": f"v{s}"}, "value"),
]


@pytest.mark.parametrize("char", CONTROLS, ids=[f"U+{ord(c):04X}" for c in CONTROLS])
def test_control_characters_are_rejected_anywhere(
    api: httpx.Client, store: Store, account: NewAccount, target: str, char: str
) -> None:
    def check(op: str, args: Json, param: str) -> None:
        rejects_without_write(
            store,
            account.account_id,
            lambda: api.post(f"/v1/{op}", json=args),
            400,
            "invalid_argument",
            param,
        )

    all_hold(
        {
            f"{op} {param}": lambda op=op, b=build, param=param: check(
                op, fill(b(char), target), param
            )
            for op, build, param in CONTROL_PLACES
        }
    )


SURROGATES: list[tuple[str, bytes, str | None]] = [
    ("contact.create", b'{"display_name": "a\\ud800b"}', "display_name"),
    ("contact.create", b'{"display_name": "\\udfff"}', "display_name"),
    ("contact.create", b'{"display_name": "\\ud83e"}', "display_name"),
    ("contact.create", b'{"attributes": {"k": ["\\udc00"]}}', "attributes.k.0"),
    ("contact.create", b'{"attributes": {"\\ud800": 1}}', "attributes"),
    (
        "contact.create",
        b'{"identities": [{"kind": "other", "value": "\\ud800"}]}',
        "identities.0.value",
    ),
    ("contact.update", b'{"id": "<cid>", "title": "\\ud800"}', "title"),
    ("identity.add", b'{"contact_id": "<cid>", "kind": "other", "value": "\\udbff"}', "value"),
]


@pytest.mark.parametrize(
    ("op", "raw", "param"), SURROGATES, ids=[f"{o}:{p}" for o, _, p in SURROGATES]
)
def test_lone_surrogates_are_rejected(
    api: httpx.Client,
    store: Store,
    account: NewAccount,
    target: str,
    op: str,
    raw: bytes,
    param: str | None,
) -> None:
    body = raw.replace(b"<cid>", target.encode())
    rejects_without_write(
        store, account.account_id, lambda: post_raw(api, op, body), 400, "invalid_argument", param
    )


def _random_cjk(n: int, seed: int = 7) -> str:
    rng = random.Random(seed)
    return "".join(chr(rng.randint(0x4E00, 0x9FFF)) for _ in range(n))


TOO_LONG: list[tuple[str, str, Json, str | None]] = [
    ("display-401", "contact.create", {"display_name": "x" * 401}, "display_name"),
    ("display-401-astral", "contact.create", {"display_name": "🦀" * 401}, "display_name"),
    ("given-201", "contact.create", {"given_name": "x" * 201}, "given_name"),
    ("company-201", "contact.create", {"company": "x" * 201}, "company"),
    (
        "identity-3000",
        "contact.create",
        {"identities": [{"kind": "other", "value": "x" * 3000}]},
        "identities.0.value",
    ),
    (
        "email-3000",
        "contact.create",
        {"identities": [{"kind": "email", "value": "a" * 2990 + "@x.dev"}]},
        "identities.0.value",
    ),
    ("attributes-65k-ascii", "contact.create", {"attributes": {"s": "a" * 65_600}}, "attributes"),
    (
        "attributes-65k-many-keys",
        "contact.create",
        {"attributes": {f"k{i}": "v" * 60 for i in range(1200)}},
        "attributes",
    ),
    (
        "attributes-65k-utf8-bytes",
        "contact.create",
        {"attributes": {"s": "🦀" * 17_000}},
        "attributes",
    ),
    ("attributes-key-201", "contact.create", {"attributes": {"k" * 201: 1}}, "attributes"),
    (
        "attributes-depth-9",
        "contact.create",
        {"attributes": {"a": [[[[[[[[1]]]]]]]]}},
        "attributes",
    ),
    (
        "args-depth-17",
        "contact.create",
        {"attributes": {"a": {"b": [[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]}}},
        None,
    ),
    (
        "update-display-401",
        "contact.update",
        {"id": CID, "display_name": "y" * 401},
        "display_name",
    ),
    (
        "update-attributes-65k",
        "contact.update",
        {"id": CID, "attributes": {"s": "a" * 65_600}},
        "attributes",
    ),
    (
        "add-identity-3000",
        "identity.add",
        {"contact_id": CID, "kind": "other", "value": "z" * 3000},
        "value",
    ),
]


@pytest.mark.parametrize(
    ("op", "args", "param"), [c[1:] for c in TOO_LONG], ids=[c[0] for c in TOO_LONG]
)
def test_too_long_or_too_deep_is_400_naming_the_param(
    api: httpx.Client,
    store: Store,
    account: NewAccount,
    target: str,
    op: str,
    args: Json,
    param: str | None,
) -> None:
    error = rejects_without_write(
        store,
        account.account_id,
        lambda: api.post(f"/v1/{op}", json=fill(args, target)),
        400,
        "invalid_argument",
    )
    if param is not None:
        assert error["param"] == param, error
    else:
        assert error["param"], error


BOUNDARY: list[tuple[str, Json]] = [
    ("display-400", {"display_name": "x" * 400}),
    ("display-400-astral", {"display_name": "🦀" * 400}),
    (
        "identity-2048",
        {"display_name": "e", "identities": [{"kind": "other", "value": "x" * 2048}]},
    ),
    ("attributes-60k", {"attributes": {"s": "a" * 60_000}}),
    ("attributes-key-200", {"attributes": {"k" * 200: 1}}),
]


@pytest.mark.parametrize("args", [b[1] for b in BOUNDARY], ids=[b[0] for b in BOUNDARY])
def test_values_at_the_limit_are_accepted_verbatim(api: httpx.Client, args: Json) -> None:
    created = data(api.post("/v1/contact.create", json=args))
    fetched = data(api.post("/v1/contact.get", json={"id": created["id"]}))
    for field, value in args.items():
        if field == "identities":
            assert fetched["identities"][0]["value"] == value[0]["value"]
        else:
            assert fetched[field] == value


#: Inputs the argument models accept but whose stored form outgrows a column or an index: the
#: answer may be a 400 naming the param or a stored contact, but never a 500.
STORAGE_LIMITS: list[tuple[str, Json, str | None]] = [
    (
        "source-150-chars",
        {
            "display_name": "s",
            "identities": [{"kind": "email", "value": "s@x.dev", "source": "s" * 150}],
        },
        "identities.0.source",
    ),
    (
        "casefold-expands-past-2048",
        {"display_name": "fold", "identities": [{"kind": "other", "value": "ß" * 2000}]},
        "identities.0.value",
    ),
    (
        "2048-cjk-over-index-row-size",
        {"display_name": "cjk", "identities": [{"kind": "other", "value": _random_cjk(2048)}]},
        "identities.0.value",
    ),
    (
        "display-name-from-1000-char-identity",
        {"identities": [{"kind": "other", "value": "i" * 1000}]},
        None,
    ),
    (
        "display-name-from-200+200-names",
        {"given_name": "g" * 200, "family_name": "f" * 200},
        None,
    ),
]


@pytest.mark.parametrize(
    ("args", "param"), [c[1:] for c in STORAGE_LIMITS], ids=[c[0] for c in STORAGE_LIMITS]
)
def test_values_the_model_accepts_fit_the_database(
    api: httpx.Client, store: Store, account: NewAccount, target: str, args: Json, param: str | None
) -> None:
    """Each input passes the argument model, but its stored form outgrows a column or an index on
    some backend. A 400 naming the param or a stored contact are both fine; a 500 is not."""
    before = snapshot(store, account.account_id)
    response = api.post("/v1/contact.create", json=args)  # audit_response fails any 500
    if response.status_code == 400:
        assert param is None or response.json()["error"]["param"] == param, response.json()
        assert snapshot(store, account.account_id) == before
        return
    created = data(response)
    for field in ("given_name", "family_name"):
        assert created[field] == args.get(field)
    for sent, stored in zip(args.get("identities", []), created["identities"], strict=True):
        assert stored["value"] == sent["value"]
        assert stored["source"] == sent.get("source")


NUMBERS: list[tuple[str, bytes, str]] = [
    ("2^53", b'{"attributes": {"n": 9007199254740992}}', "attributes.n"),
    ("-2^53", b'{"attributes": {"n": -9007199254740992}}', "attributes.n"),
    ("2^64-in-list", b'{"attributes": {"l": [1, 18446744073709551616]}}', "attributes.l.1"),
    ("1e400-is-infinite", b'{"attributes": {"f": 1e400}}', "attributes.f"),
    ("-1e400", b'{"attributes": {"x": {"f": -1e400}}}', "attributes.x.f"),
]


@pytest.mark.parametrize(("raw", "param"), [n[1:] for n in NUMBERS], ids=[n[0] for n in NUMBERS])
def test_unsafe_numbers_are_rejected(
    api: httpx.Client, store: Store, account: NewAccount, target: str, raw: bytes, param: str
) -> None:
    rejects_without_write(
        store,
        account.account_id,
        lambda: post_raw(api, "contact.create", raw),
        400,
        "invalid_argument",
        param,
    )


def test_safe_numbers_round_trip(api: httpx.Client) -> None:
    attributes = {
        "max": 2**53 - 1,
        "min": -(2**53 - 1),
        "zero": 0,
        "tenth": 0.1,
        "tiny": 1e-7,
        "huge": 1.7976931348623157e308,
        "one": 1.0,
        "mixed": [True, False, None, "", 3],
    }
    created = data(
        api.post("/v1/contact.create", json={"display_name": "n", "attributes": attributes})
    )
    fetched = data(api.post("/v1/contact.get", json={"id": created["id"]}))
    assert fetched["attributes"] == attributes
    assert json.dumps(fetched["attributes"], sort_keys=True) == json.dumps(
        attributes, sort_keys=True
    )


SQLISH = [
    "'; DROP TABLE contacts;--",
    '" OR 1=1 --',
    "Robert'); DELETE FROM identities WHERE ('1'='1",
    "100% real",
    "under_score",
    "back\\slash",
    "both %_\\ here",
    "$1 :name ? %(x)s {0}",
    "plain person",
]


@pytest.mark.parametrize("text", SQLISH)
def test_sql_looking_text_round_trips(api: httpx.Client, text: str) -> None:
    args = {
        "display_name": text,
        "company": text,
        "attributes": {text: text},
        "identities": [{"kind": "other", "value": text}],
    }
    created = data(api.post("/v1/contact.create", json=args))
    fetched = data(api.post("/v1/contact.get", json={"id": created["id"]}))
    assert fetched["display_name"] == fetched["company"] == text
    assert fetched["attributes"] == {text: text}
    assert fetched["identities"][0]["value"] == text


SEARCHES = ["%", "_", "\\", "%%", "_%", "\\%", "'", '"', "--", "OR 1=1", "real", "%_\\", "ERSO"]


def test_search_matches_only_literally(api: httpx.Client) -> None:
    ids = {
        text: data(api.post("/v1/contact.create", json={"display_name": text}))["id"]
        for text in SQLISH
    }

    def check(q: str) -> None:
        found = data(api.post("/v1/contact.list", json={"q": q, "limit": 100}))["data"]
        expected = {ids[t] for t in SQLISH if q.lower() in t.lower()}
        assert {c["id"] for c in found} == expected

    all_hold({f"q={q!r}": lambda q=q: check(q) for q in SEARCHES})


# -- 11. rate limiting ----------------------------------------------------------------------------


def test_rate_limit_is_429_with_retry_after_per_key(
    api: httpx.Client, store: Store, account: NewAccount
) -> None:
    other = new_key(api, ["read"])["secret"]
    engine = Engine(store, make_settings(rate_limit_per_second=2))
    with LiveServer(engine) as server, client(server.url, account.secret) as first:
        responses = [first.post("/v1/contact.list", json={}) for _ in range(10)]
        limited = [r for r in responses if r.status_code == 429]
        assert limited, [r.status_code for r in responses]
        assert all(r.status_code in (200, 429) for r in responses)
        for response in limited:
            error_of(response, 429, "rate_limited")
            retry_after = response.headers.get("retry-after", "")
            assert re.fullmatch(r"[1-9][0-9]*", retry_after), retry_after
        with client(server.url, other) as second:
            assert data(second.post("/v1/contact.list", json={}))["object"] == "list"


# -- 12. headers -----------------------------------------------------------------------------------


def test_successful_write_carries_run_action_and_request_ids(api: httpx.Client) -> None:
    response = api.post("/v1/contact.create", json={"display_name": "Headers"})
    data(response)
    assert response.headers["x-krabs-run"].startswith("run_")
    assert response.headers["x-krabs-action"].startswith("act_")
    assert response.headers["x-request-id"].startswith("req_")


ECHO: list[tuple[str, str, str, bytes | None]] = [
    ("success", "POST", "/v1/contact.list", b"{}"),
    ("op-error", "POST", "/v1/contact.create", b'{"stage": 5}'),
    ("body-error", "POST", "/v1/contact.create", b"{"),
    ("too-large", "POST", "/v1/contact.create", b" " * (2 * MIB)),
    ("unknown-op", "POST", "/v1/contact.explode", b"{}"),
    ("unauthenticated", "POST", "/v1/contact.list", None),
    ("no-route", "POST", "/nowhere", b"{}"),
    ("wrong-method", "GET", "/v1/contact.create", None),
]


@pytest.mark.parametrize(("method", "path", "raw"), [e[1:] for e in ECHO], ids=[e[0] for e in ECHO])
def test_given_request_id_is_echoed(
    api: httpx.Client, anon: httpx.Client, method: str, path: str, raw: bytes | None
) -> None:
    headers = {"X-Request-Id": "abc-123", "Content-Type": "application/json"}
    sender = anon if raw is None and method == "POST" else api
    response = sender.request(method, path, content=raw, headers=headers)
    if response.status_code >= 400:
        assert response.json()["error"]["request_id"] == "abc-123"
    assert response.headers.get("x-request-id") == "abc-123", dict(response.headers)


@pytest.mark.parametrize(
    "given",
    ["has space", "x" * 65, "semi;colon", "ünï"],
    ids=["space", "65-chars", "semicolon", "unicode"],
)
def test_unusable_request_id_is_replaced(api: httpx.Client, given: str) -> None:
    response = api.post(
        "/v1/contact.create", json={"stage": 5}, headers={"X-Request-Id": given.encode()}
    )
    request_id = response.json()["error"]["request_id"]
    assert request_id.startswith("req_")
    assert response.headers["x-request-id"] == request_id


@pytest.mark.parametrize(
    "raw",
    [b"[" * 100_000, b"1" * 5000, b"{", b"\xff\xfe", b'{"a": NaN}'],
    ids=["deep", "huge-int", "truncated", "bad-utf8", "nan"],
)
def test_invalid_json_messages_hide_interpreter_internals(http: httpx.Client, raw: bytes) -> None:
    r = http.post("/v1/contact.list", content=raw, headers={"Content-Type": "application/json"})
    assert r.status_code == 400 and r.json()["error"]["code"] == "invalid_json"
    message = r.json()["error"]["message"]
    for leak in (
        "recursion",
        "sys.set_int_max_str_digits",
        "codec",
    ):
        assert leak not in message, message
