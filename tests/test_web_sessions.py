"""Dashboard sessions without a browser, on SQLite and PostgreSQL: the cookie exchange, the CSRF rule
for cookie sessions on ``POST /v1/{op}``, sign-out and key revocation, hostile cookies and redirects."""

from __future__ import annotations

import re
from collections.abc import Iterator

import httpx
import pytest
import sqlalchemy as sa

from conftest import Caller, LiveServer, ok
from krabs.accounts import NewAccount
from krabs.engine import Engine
from krabs.store.tables import web_sessions
from krabs.web.sessions import _digest


@pytest.fixture
def browser_like(live: LiveServer) -> Iterator[httpx.Client]:
    """A client with no Authorization header: it only has what a browser would."""
    with httpx.Client(base_url=live.url, timeout=30, follow_redirects=False) as client:
        yield client


def sign_in(client: httpx.Client, secret: str, **headers: str) -> httpx.Response:
    return client.post(
        "/signin",
        data={"api_key": secret, "next": "/contacts"},
        headers={"Origin": str(client.base_url).rstrip("/"), **headers},
    )


def csrf_of(client: httpx.Client) -> str:
    page = client.get("/contacts")
    assert page.status_code == 200
    found = re.search(r'<meta name="csrf-token" content="([0-9a-f]{64})">', page.text)
    assert found
    return found.group(1)


def test_sign_in_exchanges_the_key_for_a_strict_cookie(
    browser_like: httpx.Client, account: NewAccount, engine: Engine
) -> None:
    r = sign_in(browser_like, account.secret)
    assert r.status_code == 303 and r.headers["location"] == "/contacts"
    cookie = r.headers["set-cookie"]
    assert cookie.startswith("krabs_session=")
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie and "Path=/" in cookie
    assert account.secret not in cookie
    secret = browser_like.cookies["krabs_session"]
    with engine.store.connect(write=False) as conn:
        row = conn.execute(
            sa.select(web_sessions).where(web_sessions.c.id == _digest(secret))
        ).one()
    assert row.account_id == account.account_id and row.revoked_at is None
    assert secret not in row  # only hashes are stored
    assert account.secret not in row


def test_cookie_session_calls_need_the_csrf_token(
    browser_like: httpx.Client, account: NewAccount
) -> None:
    sign_in(browser_like, account.secret)
    token = csrf_of(browser_like)
    refused = browser_like.post("/v1/contact.create", json={"display_name": "Forged"})
    assert refused.status_code == 403
    assert refused.json()["error"]["code"] == "forbidden"
    assert refused.json()["error"]["param"] == "X-CSRF-Token"
    wrong = browser_like.post(
        "/v1/contact.create", json={"display_name": "Forged"}, headers={"X-CSRF-Token": "0" * 64}
    )
    assert wrong.status_code == 403
    made = browser_like.post(
        "/v1/contact.create", json={"display_name": "Real"}, headers={"X-CSRF-Token": token}
    )
    assert made.status_code == 200, made.text
    # Acting as the key's own principal: the audit names the key's agent.
    action = browser_like.post(
        "/v1/action.get",
        json={"id": made.headers["X-Krabs-Action"]},
        headers={"X-CSRF-Token": token},
    ).json()
    assert action["actor"]["key"] == account.key_id
    # Reads are POSTs too, so they need the token as well; GET /v1/schema does not.
    assert browser_like.post("/v1/contact.list", json={}).status_code == 403
    assert browser_like.get("/v1/schema").status_code == 200


def test_a_cross_site_sign_in_is_refused(browser_like: httpx.Client, account: NewAccount) -> None:
    r = browser_like.post(
        "/signin", data={"api_key": account.secret}, headers={"Origin": "https://evil.example"}
    )
    assert r.status_code == 403
    assert "krabs_session" not in browser_like.cookies


def test_sign_out_needs_the_token_and_revokes(
    browser_like: httpx.Client, account: NewAccount
) -> None:
    sign_in(browser_like, account.secret)
    token = csrf_of(browser_like)
    secret = browser_like.cookies["krabs_session"]
    origin = {"Origin": str(browser_like.base_url).rstrip("/")}
    assert browser_like.post("/signout", data={"csrf": "nope"}, headers=origin).status_code == 403
    assert browser_like.post(
        "/v1/contact.list", json={}, headers={"X-CSRF-Token": token}
    ).is_success
    out = browser_like.post("/signout", data={"csrf": token}, headers=origin)
    assert out.status_code == 303 and out.headers["location"] == "/signin"
    browser_like.cookies.set("krabs_session", secret)  # a copy of the old cookie
    refused = browser_like.post("/v1/contact.list", json={}, headers={"X-CSRF-Token": token})
    assert refused.status_code == 401
    assert refused.json()["error"]["code"] == "unauthenticated"
    assert browser_like.get("/v1/schema").status_code == 401
    assert browser_like.get("/contacts").status_code == 303


def test_revoking_the_key_ends_its_sessions(
    browser_like: httpx.Client, account: NewAccount, call: Caller
) -> None:
    key = ok(call("api_key.create", {"name": "dash", "scopes": ["read"]}))
    sign_in(browser_like, key["secret"])
    token = csrf_of(browser_like)
    listed = browser_like.post("/v1/contact.list", json={}, headers={"X-CSRF-Token": token})
    assert listed.status_code == 200
    # The session has the key's scopes, no more: a write is forbidden.
    write = browser_like.post(
        "/v1/contact.create", json={"display_name": "x"}, headers={"X-CSRF-Token": token}
    )
    assert write.status_code == 403
    ok(call("api_key.revoke", {"id": key["id"]}))
    refused = browser_like.post("/v1/contact.list", json={}, headers={"X-CSRF-Token": token})
    assert refused.status_code == 401


@pytest.mark.parametrize(
    "cookie", ["", "x", "a" * 5000, "%00", "' OR 1=1 --", "krabs_sk_" + "a" * 32]
)
def test_hostile_cookies_are_refused(browser_like: httpx.Client, cookie: str) -> None:
    browser_like.cookies.set("krabs_session", cookie)
    r = browser_like.post("/v1/contact.list", json={}, headers={"X-CSRF-Token": "0" * 64})
    assert r.status_code in (401, 403)
    assert browser_like.get("/audit").status_code == 303


@pytest.mark.parametrize("key", ["", "nope", "krabs_sk_" + "z" * 32, "x" * 10_000])
def test_bad_keys_do_not_sign_in(browser_like: httpx.Client, key: str) -> None:
    r = sign_in(browser_like, key)
    assert r.status_code in (401, 200)  # the form again, never a session
    assert "krabs_session" not in browser_like.cookies


@pytest.mark.parametrize("target", ["//evil.example/x", "https://evil.example", "\\\\evil"])
def test_sign_in_never_redirects_off_site(
    browser_like: httpx.Client, account: NewAccount, target: str
) -> None:
    r = browser_like.post(
        "/signin",
        data={"api_key": account.secret, "next": target},
        headers={"Origin": str(browser_like.base_url).rstrip("/")},
    )
    assert r.status_code == 303 and r.headers["location"] == "/runs"


def test_bearer_still_wins_and_pages_carry_security_headers(
    http: httpx.Client, browser_like: httpx.Client, account: NewAccount
) -> None:
    # A Bearer caller with a stray cookie is judged by its key alone (no CSRF needed).
    http.cookies.set("krabs_session", "stale")
    assert http.post("/v1/contact.list", json={}).status_code == 200
    sign_in(browser_like, account.secret)
    page = browser_like.get("/finance")
    assert "frame-ancestors 'none'" in page.headers["content-security-policy"]
    assert page.headers["x-frame-options"] == "DENY"
    assert page.headers["cache-control"] == "no-store"
    assert browser_like.get("/static/vendor/chart.umd.min.js").status_code == 200


def test_an_expired_session_is_refused(
    browser_like: httpx.Client, account: NewAccount, engine: Engine
) -> None:
    sign_in(browser_like, account.secret)
    token = csrf_of(browser_like)
    secret = browser_like.cookies["krabs_session"]
    with engine.store.transaction() as conn:
        conn.execute(
            web_sessions.update()
            .where(web_sessions.c.id == _digest(secret))
            .values(expires_at="2000-01-01T00:00:00.000000Z")
        )
    r = browser_like.post("/v1/contact.list", json={}, headers={"X-CSRF-Token": token})
    assert r.status_code == 401
    assert browser_like.get("/contacts").status_code == 303
    # The next sign-in sweeps expired rows away.
    sign_in(browser_like, account.secret)
    with engine.store.connect(write=False) as conn:
        gone = conn.execute(sa.select(web_sessions).where(web_sessions.c.id == _digest(secret)))
        assert gone.first() is None
