"""The dashboard in a real browser: Playwright's Python package driving Debian's Chromium (headless)
against a real ``krabs`` server on a loopback port.

The browser scenarios run on SQLite only: the dashboard is a client of ``POST /v1/{op}`` and the run
streams, whose storage behaviour the contract and runs tests already prove on both backends, and a
browser session costs seconds per page on this 2-core machine. The session rules that touch storage
(cookie, CSRF, sign-out) are checked without a browser on both backends in tests/test_web_sessions.py.

Screenshots of every page land under the test's temporary output; the run page's is also copied to
docs/run-page.png for the README when KRABS_UPDATE_DOCS=1.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from conftest import LiveServer, make_store, ok
from conftest import test_settings as settings_for
from krabs.accounts import NewAccount, create_account
from krabs.engine import CallRequest, Engine, Outcome
from krabs.store.migrate import migrate

sync_api = pytest.importorskip("playwright.sync_api")
CHROMIUM = "/usr/bin/chromium"
ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
]
ROOT = Path(__file__).resolve().parent.parent

if not Path(CHROMIUM).exists():
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        raise RuntimeError("CI=true but /usr/bin/chromium is missing (make test installs it)")
    pytest.skip(
        "Debian's chromium is not installed (make test installs it)", allow_module_level=True
    )


class Site:
    """One SQLite store, engine and live server for the module, with an account and helpers."""

    def __init__(self, tmp: Path) -> None:
        self.store, self.cleanup = make_store("sqlite", tmp)
        migrate(self.store)
        self.engine = Engine(self.store, settings_for(data_dir=tmp / "data"))
        self.account: NewAccount = create_account(self.store, "Dashboard account")
        self.server = LiveServer(self.engine)

    def call(self, op: str, args: dict[str, Any] | None = None, **kw: Any) -> Outcome:
        return self.engine.call(
            CallRequest(op=op, args=args or {}, api_key=self.account.secret, transport="test", **kw)
        )

    def http(self) -> httpx.Client:
        return httpx.Client(
            base_url=self.server.url,
            headers={"Authorization": f"Bearer {self.account.secret}"},
            timeout=30,
        )


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    s = Site(tmp_path_factory.mktemp("dashboard"))
    with s.server:
        yield s
    s.cleanup()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
        yield b
        b.close()


@pytest.fixture(scope="module")
def shots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("screenshots")


@pytest.fixture
def page(browser: Any, site: Site) -> Iterator[Any]:
    """A fresh browser context signed in through the sign-in form."""
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    pg = context.new_page()
    errors: list[str] = []
    pg.on("pageerror", lambda e: errors.append(str(e)))
    sign_in(pg, site)
    yield pg
    context.close()
    assert not errors, errors


def sign_in(pg: Any, site: Site, key: str | None = None) -> None:
    pg.goto(site.server.url + "/signin")
    pg.get_by_label("API key").fill(key or site.account.secret)
    pg.get_by_role("button", name="Sign in").click()


def expect(locator: Any) -> Any:
    return sync_api.expect(locator)


# -- sign-in -------------------------------------------------------------------------------------


def test_sign_in_sets_a_strict_httponly_cookie(browser: Any, site: Site, shots: Path) -> None:
    context = browser.new_context()
    pg = context.new_page()
    pg.goto(site.server.url + "/audit")
    expect(pg).to_have_url(site.server.url + "/signin?next=/audit")
    pg.screenshot(path=shots / "signin.png")
    pg.get_by_label("API key").fill("krabs_sk_" + "x" * 32)
    pg.get_by_role("button", name="Sign in").click()
    expect(pg.get_by_role("alert")).to_contain_text("unknown API key")
    assert not context.cookies()
    pg.get_by_label("API key").fill(site.account.secret)
    pg.get_by_role("button", name="Sign in").click()
    expect(pg).to_have_url(site.server.url + "/audit")  # back where the visitor was going
    (cookie,) = context.cookies()
    assert cookie["name"] == "krabs_session"
    assert cookie["httpOnly"] is True and cookie["sameSite"] == "Strict"
    assert site.account.secret not in cookie["value"]
    # The page's script cannot read the cookie (HttpOnly) and never holds the key.
    assert pg.evaluate("document.cookie") == ""
    assert site.account.secret not in pg.content()
    context.close()


def test_sign_out_revokes_the_session(browser: Any, site: Site) -> None:
    context = browser.new_context()
    pg = context.new_page()
    sign_in(pg, site)
    expect(pg).to_have_url(site.server.url + "/runs")
    (cookie,) = context.cookies()
    csrf = pg.locator('meta[name="csrf-token"]').get_attribute("content")
    pg.get_by_role("button", name="Sign out").click()
    expect(pg).to_have_url(site.server.url + "/signin")
    assert not context.cookies()
    # The old cookie (replayed by hand, with its CSRF token) is refused: the row is revoked.
    with httpx.Client(base_url=site.server.url, timeout=30) as raw:
        raw.cookies.set("krabs_session", cookie["value"])
        r = raw.post("/v1/contact.list", json={}, headers={"X-CSRF-Token": csrf})
        assert r.status_code == 401 and r.json()["error"]["code"] == "unauthenticated"
        assert raw.get("/audit").status_code == 303
    context.close()


def test_another_site_cannot_use_the_session(page: Any, site: Site) -> None:
    """A page on another site makes the signed-in browser post to krabs (form and fetch): the
    SameSite=Strict cookie is not sent, and without it (or the CSRF token) nothing happens."""
    target = site.server.url
    evil = f"""<!doctype html><html><body>
      <form id="f" method="post" action="{target}/v1/contact.create" enctype="text/plain">
        <input name='{{"display_name":"csrf-victim-form","x":"' value='"}}'>
      </form>
      <script>
        fetch("{target}/v1/contact.create", {{method: "POST", mode: "no-cors", credentials: "include",
          headers: {{"Content-Type": "text/plain"}}, body: '{{"display_name":"csrf-victim-fetch"}}'}})
          .catch(() => null).finally(() => document.getElementById("f").submit());
      </script></body></html>"""
    page.context.route(
        "http://evil.example/**", lambda route: route.fulfill(body=evil, content_type="text/html")
    )
    posted: list[str] = []
    page.on("request", lambda r: posted.append(r.url) if r.method == "POST" else None)
    page.goto("http://evil.example/attack")
    page.wait_for_url(f"{target}/v1/contact.create")
    assert posted.count(f"{target}/v1/contact.create") >= 1
    answer = json.loads(page.locator("pre").inner_text())
    assert answer["error"]["code"] in ("unauthenticated", "unsupported_media_type"), answer
    assert page.context.cookies()  # the victim is signed in, yet nothing happened
    assert ok(site.call("contact.list", {"q": "csrf-victim"}))["data"] == []
    # A navigation from another site does not carry the Strict cookie either: it lands signed out.
    link = f'<a href="{target}/audit">open</a>'
    page.context.route(
        "http://evil.example/link", lambda route: route.fulfill(body=link, content_type="text/html")
    )
    page.goto("http://evil.example/link")
    page.get_by_role("link", name="open").click()
    expect(page).to_have_url(f"{target}/signin?next=/audit")
    page.goto(f"{target}/audit")  # typed by the user: same-site, signed in
    expect(page).to_have_url(f"{target}/audit")


# -- audit ---------------------------------------------------------------------------------------


def test_undo_a_delete_from_the_audit_page(page: Any, site: Site, shots: Path) -> None:
    contact = ok(site.call("contact.create", {"display_name": "Grace Hopper"}))
    ok(site.call("contact.delete", {"id": contact["id"]}))
    page.goto(f"{site.server.url}/audit?target={contact['id']}")
    row = page.locator("tr[data-op='contact.delete']")
    expect(row).to_have_count(1)
    page.screenshot(path=shots / "audit.png", full_page=True)
    row.get_by_role("button", name="Undo…").click()
    plan = page.locator("tr.details:not([hidden])")
    expect(
        plan.get_by_role("heading", name="Undo plan (dry run: nothing changed yet)")
    ).to_be_visible()
    expect(plan.locator("table.diff")).to_contain_text("deleted_at")
    # The plan is a dry run: the contact is still deleted.
    assert site.call("contact.get", {"id": contact["id"]}).error is not None
    plan.get_by_role("button", name="Confirm undo").click()
    expect(page.get_by_role("status")).to_contain_text("Undone: restored")
    assert ok(site.call("contact.get", {"id": contact["id"]}))["display_name"] == "Grace Hopper"
    expect(page.locator("tr[data-op='contact.delete']").get_by_text("undone")).to_be_visible()
    expect(page.locator("tr[data-op='action.undo']")).to_have_count(1)


def test_audit_details_show_the_before_and_after(page: Any, site: Site) -> None:
    contact = ok(site.call("contact.create", {"display_name": "Before"}))
    ok(site.call("contact.update", {"id": contact["id"], "display_name": "After"}))
    page.goto(f"{site.server.url}/audit?op=contact.update&target={contact['id']}")
    row = page.locator("tr[data-op='contact.update']")
    row.get_by_role("button", name="Details").click()
    expect(row.get_by_role("button", name="Details")).to_have_attribute("aria-expanded", "true")
    diff = page.locator("table.diff")
    expect(diff).to_contain_text("display_name")
    expect(diff.locator("td.before")).to_contain_text(['"Before"'])
    expect(diff.locator("td.after")).to_contain_text(['"After"'])
    expect(page.locator("#verification")).not_to_contain_text("Loading")
    # The browser recomputes the Merkle tree head from the record and the server's proof.
    page.get_by_role("button", name="Verify in the signed log").click()
    expect(page.locator("p.proof")).to_contain_text("✓ Verified in this browser")


def test_the_page_verifies_the_proof_of_every_action(page: Any, site: Site) -> None:
    for n in range(9):  # trees of several shapes: every leaf of sizes up to 9 and more
        ok(site.call("tag.create", {"name": f"proof-{n}"}))
    page.goto(f"{site.server.url}/audit")
    verdicts = page.evaluate(
        """async () => {
            const { call } = await import('/static/js/api.js');
            const { verifyInclusion } = await import('/static/js/merkle.js');
            const actions = (await call('action.list', { limit: 40 })).data;
            const out = [];
            for (const a of actions) {
              const answer = await call('audit.proof', { action: a.id });
              try { await verifyInclusion(answer, a.record); out.push('ok'); }
              catch (e) { out.push(`${a.seq}: ${e.message}`); }
            }
            return out;
        }"""
    )
    assert len(verdicts) >= 9
    assert set(verdicts) == {"ok"}, verdicts


def test_a_forged_inclusion_proof_is_caught_by_the_page(page: Any, site: Site) -> None:
    contact = ok(site.call("contact.create", {"display_name": "Proven"}))

    def forge(route: Any) -> None:
        answer = route.fetch().json()
        answer["proof"] = ["00" * 32 for _ in answer["proof"]] or ["00" * 32]
        route.fulfill(json=answer)

    page.route("**/v1/audit.proof", forge)
    page.goto(f"{site.server.url}/audit?op=contact.create&target={contact['id']}")
    page.locator("tr[data-op='contact.create']").get_by_role("button", name="Details").click()
    page.get_by_role("button", name="Verify in the signed log").click()
    expect(page.locator("p.proof")).to_contain_text("✕")
    expect(page.locator("p.proof")).not_to_contain_text("Verified")


# -- contacts ------------------------------------------------------------------------------------


def test_contact_search_and_page(page: Any, site: Site, shots: Path) -> None:
    made = ok(
        site.call(
            "contact.create",
            {
                "display_name": "Ada Lovelace",
                "company": "Analytical Engines",
                "identities": [{"kind": "email", "value": "ada@engines.example"}],
            },
        )
    )
    ok(site.call("tag.create", {"name": "vip"}))
    ok(site.call("tag.attach", {"tag": "vip", "target_id": made["id"]}))
    ok(site.call("note.create", {"body": "Met at the conference", "contact_id": made["id"]}))
    ok(site.call("task.create", {"title": "Send the notes", "contact_id": made["id"]}))
    ok(
        site.call(
            "deal.create", {"title": "Engine order", "amount": 5000, "contact_id": made["id"]}
        )
    )
    page.goto(site.server.url + "/contacts")
    page.get_by_role("searchbox", name="Search").fill("Lovelace")
    page.get_by_role("button", name="Search").click()
    rows = page.locator("#contacts tbody tr[data-id]")
    expect(rows).to_have_count(1)
    page.screenshot(path=shots / "contacts.png", full_page=True)
    rows.get_by_role("link", name="Ada Lovelace").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Ada Lovelace")
    expect(page.locator("#identities")).to_contain_text("ada@engines.example")
    expect(page.locator("#tags")).to_contain_text("vip")
    expect(page.locator("#notes")).to_contain_text("Met at the conference")
    expect(page.locator("#tasks")).to_contain_text("Send the notes")
    expect(page.locator("#deals")).to_contain_text("Engine order")
    page.screenshot(path=shots / "contact.png", full_page=True)


def test_hostile_text_is_shown_as_text(page: Any, site: Site) -> None:
    evil = '<img src=x onerror="window.pwned=1"><script>window.pwned=2</script>'
    made = ok(site.call("contact.create", {"display_name": evil, "company": "</td><b>x"}))
    ok(site.call("note.create", {"body": evil, "contact_id": made["id"]}))
    page.goto(f"{site.server.url}/contacts/{made['id']}")
    expect(page.get_by_role("heading", level=1)).to_have_text(evil)
    expect(page.locator("#notes")).to_contain_text(evil)
    page.goto(f"{site.server.url}/contacts?q=pwned")
    expect(page.locator("#contacts tbody tr[data-id]")).to_have_count(1)
    assert page.evaluate("window.pwned") is None
    assert page.locator("#contacts img").count() == 0


@pytest.mark.parametrize("path", ["/runs", "/audit", "/contacts", "/finance", "/schema"])
def test_pages_are_labelled_and_keyboard_usable(page: Any, site: Site, path: str) -> None:
    page.goto(site.server.url + path)
    expect(page.get_by_role("status")).not_to_be_empty()
    unlabelled = page.evaluate(
        """() => [...document.querySelectorAll('input:not([type=hidden]), select, textarea, button')]
            .filter((el) => !(el.labels?.length || el.getAttribute('aria-label') || el.textContent.trim()))
            .map((el) => el.outerHTML.slice(0, 80))"""
    )
    assert unlabelled == []
    assert page.locator("h1").count() == 1
    assert page.locator("main#main").count() == 1
    # The first Tab reaches the skip link, which moves focus to the content.
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.className") == "skip"
    page.keyboard.press("Enter")
    assert page.evaluate("document.activeElement.id") == "main"
    nav = page.get_by_role("navigation", name="Sections")
    expect(nav.locator("a[aria-current='page']")).to_have_attribute("href", path)


def test_audit_details_open_from_the_keyboard(page: Any, site: Site) -> None:
    ok(site.call("tag.create", {"name": "keyboard"}))
    page.goto(f"{site.server.url}/audit?op=tag.create")
    button = page.locator("tr[data-op='tag.create']").first.get_by_role("button", name="Details")
    button.focus()
    page.keyboard.press("Enter")
    expect(button).to_have_attribute("aria-expanded", "true")
    expect(page.locator("tr.details:not([hidden]) table.diff")).to_contain_text("keyboard")


# -- finance -------------------------------------------------------------------------------------


def _chart_state(page: Any, canvas: str) -> dict[str, Any]:
    return dict(
        page.evaluate(
            """(id) => {
            const canvas = document.getElementById(id);
            const chart = window.Chart.getChart(canvas);
            const values = chart.data.datasets.flatMap((d) => d.data).map(Math.abs);
            const ctx = canvas.getContext('2d');
            const px = ctx.getImageData(0, 0, canvas.width, canvas.height).data;
            let coloured = 0;
            for (let i = 0; i < px.length; i += 4) {
              const [r, g, b, a] = [px[i], px[i + 1], px[i + 2], px[i + 3]];
              if (a > 0 && Math.max(r, g, b) - Math.min(r, g, b) > 60) coloured += 1;
            }
            return { total: values.reduce((a, b) => a + b, 0), coloured };
        }""",
            canvas,
        )
    )


def test_finance_draws_charts_and_figures_open_their_rows(
    page: Any, site: Site, shots: Path
) -> None:
    from test_finance import build

    ids = build(site.call)
    page.goto(site.server.url + "/finance")
    page.get_by_label("From", exact=True).fill("2026-01-01")
    page.get_by_label("To", exact=True).fill("2026-06-30")
    page.get_by_role("button", name="Show figures").click()
    expect(page.get_by_role("status")).to_contain_text("Figures for 2026-01-01 to 2026-06-30")
    for canvas in ("mrr-chart", "funnel-chart", "expenses-chart", "channels-chart"):
        state = _chart_state(page, canvas)
        assert state["total"] > 0, canvas
        assert state["coloured"] > 500, canvas  # bars were painted, not just axes
    page.screenshot(path=shots / "finance.png", full_page=True)
    # January's new MRR (D1, €100.00) links to the deal behind it.
    page.get_by_role("button", name="new 2026-01: €100.00, show 1 row(s)").click()
    rows = page.locator("#rows-body tbody tr")
    expect(rows).to_have_count(1)
    expect(rows).to_have_attribute("data-id", ids["D1"])
    # Spend on advertising (EUR) is three expenses.
    page.get_by_role("button", name="spend advertising: €700.00, show 3 row(s)").click()
    expect(page.locator("#rows-body tbody tr")).to_have_count(3)
    shown = set(page.locator("#rows-body tbody tr").evaluate_all("rs => rs.map(r => r.dataset.id)"))
    assert shown == {ids["X1"], ids["X2"], ids["X5"]}


# -- schema --------------------------------------------------------------------------------------


def test_schema_page_lists_every_operation_and_tries_with_dry_run(
    page: Any, site: Site, shots: Path
) -> None:
    with site.http() as client:
        operations = client.get("/v1/schema").json()["operations"]
    page.goto(site.server.url + "/schema")
    cards = page.locator("details.op")
    expect(cards).to_have_count(len(operations))
    page.get_by_role("searchbox", name="Find").fill("contact.create")
    card = page.locator("details[data-name='contact.create']")
    card.locator("summary").click()
    expect(card.get_by_role("row", name="display_name")).to_be_visible()
    expect(card.locator("table.errors").get_by_role("row", name="conflict 409")).to_be_visible()
    dry = card.get_by_label("Dry run (show the plan, change nothing)")
    expect(dry).to_be_checked()
    card.get_by_label("Arguments (JSON)").fill('{"display_name": "Only a plan"}')
    card.get_by_role("button", name="Call contact.create").click()
    expect(card.locator(".result")).to_contain_text("Dry run: nothing was changed.")
    expect(card.locator(".result")).to_contain_text('"dry_run": true')
    page.screenshot(path=shots / "schema.png", full_page=True)
    found = ok(site.call("contact.list", {"q": "Only a plan"}))
    assert found["data"] == []
    # Hostile input is shown as the contract's error, not a broken page.
    card.get_by_label("Arguments (JSON)").fill('{"display_name": 5, "nope": 1}')
    card.get_by_role("button", name="Call contact.create").click()
    expect(card.locator(".result")).to_contain_text("invalid_argument")
    card.get_by_label("Arguments (JSON)").fill("{not json")
    card.get_by_role("button", name="Call contact.create").click()
    expect(card.get_by_role("alert")).to_contain_text("Arguments are not JSON")


# -- runs ----------------------------------------------------------------------------------------


class Proxy:
    """A loopback TCP proxy in front of the server that can cut every connection (what a flaky
    network or a restarted load balancer does to a stream) and refuse new ones for a while."""

    def __init__(self, port: int) -> None:
        self.target = port
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.listener.getsockname()[1]}"
        self.conns: list[socket.socket] = []
        self.requests: list[bytes] = []
        self.open = True
        self.lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            if not self.open:
                client.close()
                continue
            upstream = socket.create_connection(("127.0.0.1", self.target))
            with self.lock:
                self.conns += [client, upstream]
            threading.Thread(target=self._pipe, args=(client, upstream, True), daemon=True).start()
            threading.Thread(target=self._pipe, args=(upstream, client, False), daemon=True).start()

    def _pipe(self, src: socket.socket, dst: socket.socket, record: bool) -> None:
        try:
            while chunk := src.recv(65536):
                if record:
                    with self.lock:
                        self.requests.append(chunk)
                dst.sendall(chunk)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)
                s.close()

    def cut(self) -> None:
        """Drop every connection and refuse new ones until ``resume``."""
        self.open = False
        with self.lock:
            conns, self.conns = self.conns, []
        for s in conns:
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)
            s.close()

    def resume(self) -> None:
        self.open = True

    def close(self) -> None:
        self.cut()
        self.listener.close()


def _post(site: Site, op: str, args: dict[str, Any], **headers: str) -> httpx.Response:
    with site.http() as client:
        return client.post(f"/v1/{op}", json=args, headers=headers)


def _run(site: Site, name: str) -> str:
    return str(ok(site.call("run.create", {"name": name}))["id"])


def _seqs(page: Any) -> list[int]:
    cells = page.locator("#timeline tbody tr[data-seq]").evaluate_all(
        "rows => rows.map(r => Number(r.dataset.seq))"
    )
    return [int(c) for c in cells]


def test_a_call_appears_on_the_open_run_page_live(page: Any, site: Site, shots: Path) -> None:
    run_id = _run(site, "live-demo")
    page.goto(f"{site.server.url}/runs/{run_id}")
    expect(page.locator("#live-text")).to_have_text("Live")
    made = _post(site, "contact.create", {"display_name": "Live one"}, **{"X-Krabs-Run": run_id})
    assert made.status_code == 200
    row = page.locator("#timeline tr[data-type='tool_call']").filter(has_text="contact.create")
    expect(row).to_be_visible(timeout=2000)  # pushed over SSE, no reload
    expect(row).to_contain_text("✓")
    _post(site, "contact.get", {"id": "ct_" + "0" * 26}, **{"X-Krabs-Run": run_id})
    failed_row = page.locator("#timeline tr[data-type='tool_call']").filter(has_text="contact.get")
    expect(failed_row).to_contain_text("✕ not_found", timeout=2000)
    spans = {"node_name": "plan", "span_kind": "LLM", "model": "small", "latency_ms": 40.0}
    ok(site.call("run.add_spans", {"run_id": run_id, "spans": [spans]}))
    expect(page.locator("#timeline tr[data-type='span']")).to_contain_text("plan")
    # Details expand to the arguments, the result and the write's diff.
    row.get_by_role("button", name="Details").click()
    detail = page.locator("#timeline tr.details:not([hidden])")
    expect(detail).to_contain_text('"display_name": "Live one"')
    expect(detail.locator("table.diff")).to_contain_text("display_name")
    # The summary follows: counts at once, exact stats re-read from run.get.
    expect(page.locator("#summary dd[data-k='calls']")).to_have_text("2")
    expect(page.locator("#summary dd[data-k='errors']")).to_have_text("1")
    expect(page.locator("#summary dd[data-k='writes']")).to_have_text("1")
    expect(page.locator("#summary dd[data-k='p95']")).not_to_have_text("—")
    page.screenshot(path=shots / "run.png", full_page=True)
    assert (shots / "run.png").stat().st_size > 10_000
    if os.environ.get("KRABS_UPDATE_DOCS"):  # refresh the README's screenshot on request only
        shutil.copyfile(shots / "run.png", ROOT / "docs" / "run-page.png")


def test_import_progress_shows_live_without_a_timeline_row(page: Any, site: Site) -> None:
    from krabs.engine.uow import utcnow
    from krabs.runs.events import RunEvent
    from krabs.runs.hub import hub_for

    run_id = _run(site, "importing")
    page.goto(f"{site.server.url}/runs/{run_id}")
    expect(page.locator("#live-text")).to_have_text("Live")
    last = ok(site.call("run.get", {"id": run_id}))["last_seq"]
    # Every stored event of the run on the page first (one may render just after "Live").
    expect(page.locator("#timeline tbody tr[data-seq]")).to_have_count(last)
    rows_before = last
    data = '{"op":"contact.import_csv","action_id":null,"rows_done":250,"rows_total":1000}'
    event = RunEvent(
        id=0,
        seq=last,
        account_id=site.account.account_id,
        run_id=run_id,
        type="import.progress",
        ts=utcnow(),
        data=data,
        op="contact.import_csv",
    )
    hub_for(site.store.engine).publish([event])
    expect(page.locator("#progress")).to_contain_text("contact.import_csv: 250 of 1000 rows")
    assert page.locator("#progress-bar").get_attribute("value") == "250"
    assert page.locator("#timeline tbody tr[data-seq]").count() == rows_before


def test_the_run_page_resumes_after_a_dropped_connection(browser: Any, site: Site) -> None:
    proxy = Proxy(site.server.port)
    context = browser.new_context()
    pg = context.new_page()
    try:
        pg.goto(proxy.url + "/signin")
        pg.get_by_label("API key").fill(site.account.secret)
        pg.get_by_role("button", name="Sign in").click()
        run_id = _run(site, "flaky-network")
        pg.goto(f"{proxy.url}/runs/{run_id}")
        expect(pg.locator("#live-text")).to_have_text("Live")
        _post(site, "contact.create", {"display_name": "Before the cut"}, **{"X-Krabs-Run": run_id})
        expect(pg.locator("#timeline tr[data-type='tool_call']")).to_have_count(1)
        seen_before = max(_seqs(pg))
        proxy.cut()
        expect(pg.locator("#live-text")).to_have_text("Reconnecting…")
        for n in range(3):  # these land while the page is cut off
            _post(
                site, "contact.create", {"display_name": f"During {n}"}, **{"X-Krabs-Run": run_id}
            )
        proxy.resume()
        expect(pg.locator("#live-text")).to_have_text("Live", timeout=15000)
        _post(site, "contact.create", {"display_name": "After"}, **{"X-Krabs-Run": run_id})
        expect(pg.locator("#timeline tr[data-type='tool_call']")).to_have_count(5)
        seqs = _seqs(pg)
        assert seqs == list(range(1, len(seqs) + 1))  # no gap, no duplicate, in order
        last = ok(site.call("run.get", {"id": run_id}))["last_seq"]
        assert seqs[-1] == last
        # EventSource resumed where it was: its reconnect carried Last-Event-ID.
        sent = b"".join(proxy.requests).decode("latin-1").lower()
        assert f"last-event-id: {seen_before}" in sent
    finally:
        context.close()
        proxy.close()


def test_approve_a_waiting_call_then_the_retry_succeeds(page: Any, site: Site) -> None:
    contact = ok(site.call("contact.create", {"display_name": "Needs approval"}))
    run_id = _run(site, "gated")
    ok(site.call("approval_policy.set", {"rules": [{"op": "contact.delete"}]}))
    try:
        headers = {"X-Krabs-Run": run_id, "Idempotency-Key": "gated-delete-1"}
        first = _post(site, "contact.delete", {"id": contact["id"]}, **headers)
        assert first.status_code == 202, first.text
        assert first.json()["error"]["code"] == "approval_required"
        page.goto(f"{site.server.url}/runs/{run_id}")
        expect(page.locator("#run-status")).to_have_text("waiting for input")
        approval = page.locator("#approvals li.approval")
        expect(approval).to_contain_text("contact.delete")
        approval.get_by_role("button", name="Approve contact.delete").click()
        expect(page.get_by_role("status")).to_contain_text("Approved contact.delete")
        expect(page.locator("#approvals-card")).to_be_hidden()
        retry = _post(site, "contact.delete", {"id": contact["id"]}, **headers)
        assert retry.status_code == 200, retry.text
        assert retry.json()["deleted"] is True
        assert site.call("contact.get", {"id": contact["id"]}).error is not None
        # The retry shows up live on the page.
        done = page.locator("#timeline tr[data-type='tool_call']").filter(has_text="contact.delete")
        expect(done.filter(has_text="✓")).to_have_count(1)
    finally:
        ok(site.call("approval_policy.set", {"rules": []}))


def test_reject_cancel_and_replay_from_the_run_page(page: Any, site: Site) -> None:
    keep = ok(site.call("contact.create", {"display_name": "Keep me"}))
    run_id = _run(site, "to-cancel")
    ok(site.call("approval_policy.set", {"rules": [{"op": "contact.delete"}]}))
    try:
        headers = {"X-Krabs-Run": run_id, "Idempotency-Key": "gated-delete-2"}
        _post(
            site, "contact.update", {"id": keep["id"], "company": "Acme"}, **{"X-Krabs-Run": run_id}
        )
        assert _post(site, "contact.delete", {"id": keep["id"]}, **headers).status_code == 202
        page.goto(f"{site.server.url}/runs/{run_id}")
        page.get_by_role("button", name="Reject contact.delete").click()
        expect(page.get_by_role("status")).to_contain_text("Rejected contact.delete")
        retry = _post(site, "contact.delete", {"id": keep["id"]}, **headers)
        assert retry.json()["error"]["code"] == "approval_rejected"
        assert ok(site.call("contact.get", {"id": keep["id"]}))["company"] == "Acme"
    finally:
        ok(site.call("approval_policy.set", {"rules": []}))
    before = ok(site.call("contact.get", {"id": keep["id"]}))
    page.get_by_role("button", name="Dry-run replay").click()
    replay = page.locator("#replay")
    expect(replay).to_contain_text("Nothing was changed.")
    expect(replay.locator("tr[data-seq]").filter(has_text="contact.update")).to_have_count(1)
    assert ok(site.call("contact.get", {"id": keep["id"]})) == before
    page.get_by_role("button", name="Cancel run").click()
    page.get_by_role("button", name="Yes, cancel this run").click()
    expect(page.locator("#run-status")).to_have_text("cancelled")
    expect(page.locator("#timeline tr[data-type='run.cancelled']")).to_have_count(1)
    refused = _post(site, "contact.list", {}, **{"X-Krabs-Run": run_id})
    assert refused.json()["error"]["code"] == "run_cancelled"


def test_undo_a_whole_run_after_its_dry_run_plan(page: Any, site: Site) -> None:
    run_id = _run(site, "mistakes")
    made = _post(site, "contact.create", {"display_name": "Oops"}, **{"X-Krabs-Run": run_id})
    gone = ok(site.call("contact.create", {"display_name": "Deleted by mistake"}))
    _post(site, "contact.delete", {"id": gone["id"]}, **{"X-Krabs-Run": run_id})
    page.goto(f"{site.server.url}/runs/{run_id}")
    page.get_by_role("button", name="Undo this run…").click()
    plan = page.locator("#undo")
    expect(plan).to_contain_text("Undo plan (dry run: nothing changed yet)")
    expect(plan.locator("table.diff")).to_contain_text("deleted_at")
    assert site.call("contact.get", {"id": gone["id"]}).error is not None  # only a plan so far
    plan.get_by_role("button", name="Confirm undo of this run").click()
    expect(plan).to_contain_text("Undone:")
    assert ok(site.call("contact.get", {"id": gone["id"]}))["display_name"] == "Deleted by mistake"
    assert site.call("contact.get", {"id": made.json()["id"]}).error is not None


def test_the_runs_list_updates_live(page: Any, site: Site, shots: Path) -> None:
    page.goto(site.server.url + "/runs")
    expect(page.locator("#live-text")).to_have_text("Live")
    run_id = _run(site, "appears-live")
    row = page.locator(f"#runs tr[data-id='{run_id}']")
    expect(row).to_be_visible(timeout=5000)
    for n in range(2):
        _post(site, "contact.create", {"display_name": f"Listed {n}"}, **{"X-Krabs-Run": run_id})
    _post(site, "contact.get", {"id": "ct_" + "1" * 26}, **{"X-Krabs-Run": run_id})
    expect(row.locator("td[data-k='calls']")).to_have_text("3")
    expect(row.locator("td[data-k='errors']")).to_have_text("1")
    expect(row).to_contain_text("appears-live")
    page.screenshot(path=shots / "runs.png", full_page=True)
    # Filtered to runs waiting for a human: a run that starts waiting appears without a reload.
    page.get_by_label("Status").select_option("waiting_for_input")
    page.get_by_role("button", name="Filter").click()
    expect(row).to_have_count(0)
    contact = ok(site.call("contact.create", {"display_name": "Gate me"}))
    ok(site.call("approval_policy.set", {"rules": [{"op": "contact.delete"}]}))
    try:
        gated = _post(site, "contact.delete", {"id": contact["id"]}, **{"X-Krabs-Run": run_id})
        assert gated.status_code == 202
        expect(row).to_be_visible(timeout=5000)
        expect(row).to_contain_text("waiting for input")
    finally:
        ok(site.call("approval_policy.set", {"rules": []}))
