"""Bulk bodies over a REAL live server: a CSV as a multipart ``file`` field or a raw ``text/csv``
body (arguments as form fields / query string), vCards and raw email as bodies, the streamed CSV
export, and hostile uploads (binary garbage, empty files, an enormous line, bodies over the limits)
which fail typed and leave nothing behind."""

from __future__ import annotations

import csv
import io
import json
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from bulk_helpers import all_contacts
from conftest import Caller, ok, snapshot
from krabs.accounts import NewAccount, create_account
from krabs.engine import Engine


def upload(
    http: httpx.Client, body: bytes, *, op: str = "contact.import_csv", **fields: str
) -> httpx.Response:
    return http.post(f"/v1/{op}", files={"file": ("contacts.csv", body, "text/csv")}, data=fields)


def raw(
    http: httpx.Client, body: bytes | Iterator[bytes], ctype: str, op: str, **query: str
) -> httpx.Response:
    return http.post(f"/v1/{op}", content=body, params=query, headers={"Content-Type": ctype})


def error(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body: dict[str, Any] = response.json()["error"]
    assert body["code"] == code, body
    return body


def spool_leftovers(engine: Engine) -> list[Path]:
    root = engine.settings.data_dir / "uploads"
    return [p for p in root.rglob(".part-*")] if root.exists() else []


CSV = b"Name,E-mail,Company,Tags\nAda,ada@x.dev,AE,vip\nBob,BOB@y.dev,Bletchley,\n"


def test_multipart_upload_imports_with_form_arguments(http: httpx.Client, call: Caller) -> None:
    body = b"Nom;Courriel\nAda;ada@x.dev\nBob;bob@y.dev\n"
    r = upload(http, body, mapping=json.dumps({"Nom": "given_name", "Courriel": "email"}))
    assert r.status_code == 200, r.text
    result = r.json()
    assert (result["created"], result["delimiter"]) == (2, ";")
    assert result["undo_token"]
    names = sorted(c["given_name"] for c in all_contacts(call))
    assert names == ["Ada", "Bob"]
    action = ok(call("action.get", {"id": r.headers["X-Krabs-Action"]}))
    assert action["args"]["upload"].startswith("sha256:")


def test_raw_csv_body_with_query_arguments_and_dry_run(
    http: httpx.Client, call: Caller, engine: Engine, account: NewAccount
) -> None:
    ok(call("action.list", {"limit": 1}))
    before = snapshot(engine.store, account.account_id)
    plan = raw(http, CSV, "text/csv", "contact.import_csv", dry_run="true")
    assert plan.status_code == 200, plan.text
    assert plan.json()["dry_run"] is True and plan.json()["result"]["created"] == 2
    diff = plan.json()["diff"]
    assert {d["table"]: d["count"] for d in diff if "count" in d}["contacts"] == 2
    assert snapshot(engine.store, account.account_id) == before
    real = raw(http, CSV, "text/csv; charset=utf-8", "contact.import_csv", on_match="skip")
    assert real.status_code == 200 and real.json()["created"] == 2


def test_the_same_file_replays_under_its_idempotency_key(http: httpx.Client, call: Caller) -> None:
    headers = {"Idempotency-Key": "upload-once"}
    files = {"file": ("c.csv", CSV, "text/csv")}
    first = http.post("/v1/contact.import_csv", files=files, headers=headers)
    again = http.post("/v1/contact.import_csv", files=files, headers=headers)
    assert first.status_code == again.status_code == 200
    assert again.headers.get("Idempotent-Replayed") == "true"
    assert len(all_contacts(call)) == 2


def test_an_upload_import_undoes_exactly(http: httpx.Client, call: Caller) -> None:
    r = upload(http, CSV)
    assert r.status_code == 200
    undone = ok(call("action.undo", {"undo_token": r.json()["undo_token"]}))
    assert undone["conflicts"] == []
    assert all_contacts(call) == []


def test_another_accounts_upload_is_not_visible(
    http: httpx.Client, call: Caller, engine: Engine
) -> None:
    r = upload(http, CSV)
    assert r.status_code == 200, r.text
    ref = ok(call("action.get", {"id": r.headers["X-Krabs-Action"]}))["args"]["upload"]
    other = create_account(engine.store, "Other")
    again = httpx.post(
        f"{http.base_url}/v1/contact.import_csv",
        json={"upload": ref},
        headers={"Authorization": f"Bearer {other.secret}"},
    )
    assert error(again, 400, "invalid_argument")["param"] == "upload"


def test_exactly_one_of_csv_and_upload(http: httpx.Client) -> None:
    both = http.post("/v1/contact.import_csv", json={"csv": "email\na@x.dev\n", "upload": "x"})
    assert error(both, 400, "invalid_argument")["param"] == "upload"
    bad = http.post("/v1/contact.import_csv", json={"upload": "sha256:" + "0" * 64})
    assert "no upload" in error(bad, 400, "invalid_argument")["message"]
    shape = http.post("/v1/contact.import_csv", json={"upload": "../../etc/passwd"})
    assert error(shape, 400, "invalid_argument")["param"] == "upload"


# -- hostile uploads: typed errors, nothing written, no spool files left ------------------------


@pytest.mark.parametrize(
    ("body", "what"),
    [
        (bytes(range(256)) * 4000, "not UTF-8"),
        (b"", "empty"),
        (b"\n\n\n", "empty"),
        (b"shoe size,city\n42,Paris\n", "no column"),
    ],
    ids=["binary-garbage", "zero-bytes", "blank", "no-usable-column"],
)
def test_hostile_files_fail_typed_and_write_nothing(
    http: httpx.Client, call: Caller, engine: Engine, account: NewAccount, body: bytes, what: str
) -> None:
    ok(call("action.list", {"limit": 1}))
    before = snapshot(engine.store, account.account_id)
    for r in (upload(http, body), raw(http, body, "text/csv", "contact.import_csv")):
        assert what in error(r, 400, "invalid_argument")["message"]
    assert snapshot(engine.store, account.account_id) == before
    assert spool_leftovers(engine) == []


def test_garbage_after_good_rows_leaves_no_partial_import(
    http: httpx.Client, call: Caller, engine: Engine, account: NewAccount
) -> None:
    good = b"email\n" + b"".join(b"p%d@x.dev\n" % n for n in range(1500))
    ok(call("action.list", {"limit": 1}))
    before = snapshot(engine.store, account.account_id)
    r = upload(http, good + b"\xff\xfe\x00garbage\n")
    assert "not UTF-8" in error(r, 400, "invalid_argument")["message"]
    assert snapshot(engine.store, account.account_id) == before


def test_an_enormous_line_is_refused_without_holding_it(
    http: httpx.Client,
    call: Caller,
    engine: Engine,
    account: NewAccount,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("KRABS_MAX_LINE_BYTES", str(64 * 1024))
    ok(call("action.list", {"limit": 1}))
    before = snapshot(engine.store, account.account_id)

    def body() -> Iterator[bytes]:
        yield b"name,email\nAda,ada@x.dev\n"
        for _ in range(20):  # one 20 MB line, streamed
            yield b"x" * (1024 * 1024)
        yield b",b@x.dev\n"

    r = raw(http, body(), "text/csv", "contact.import_csv")
    e = error(r, 400, "invalid_argument")
    assert "line 3 is longer than 65536" in e["message"]
    assert snapshot(engine.store, account.account_id) == before


def test_a_body_over_the_upload_limit_is_payload_too_large(
    http: httpx.Client,
    call: Caller,
    engine: Engine,
    account: NewAccount,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("KRABS_MAX_UPLOAD_BYTES", str(256 * 1024))
    ok(call("action.list", {"limit": 1}))
    before = snapshot(engine.store, account.account_id)
    big = b"email\n" + b"a@x.dev\n" * 40_000
    declared = upload(http, big)
    assert "KRABS_MAX_UPLOAD_BYTES" in error(declared, 413, "payload_too_large")["message"]

    def chunked() -> Iterator[bytes]:  # no Content-Length: cut off while streaming
        for start in range(0, len(big), 16 * 1024):
            yield big[start : start + 16 * 1024]

    streamed = raw(http, chunked(), "text/csv", "contact.import_csv")
    error(streamed, 413, "payload_too_large")
    assert snapshot(engine.store, account.account_id) == before
    assert spool_leftovers(engine) == []
    assert upload(http, CSV).status_code == 200  # the server is fine


def test_an_email_with_a_50_mb_attachment_is_payload_too_large(
    http: httpx.Client, call: Caller, engine: Engine, account: NewAccount
) -> None:
    ok(call("action.list", {"limit": 1}))
    before = snapshot(engine.store, account.account_id)
    message = (
        b"From: a@x.dev\r\nTo: b@y.dev\r\nSubject: big\r\nMIME-Version: 1.0\r\n"
        b'Content-Type: multipart/mixed; boundary="B"\r\n\r\n--B\r\n'
        b"Content-Type: application/octet-stream\r\nContent-Transfer-Encoding: base64\r\n\r\n"
        + b"QUFB" * (50 * 1024 * 1024 // 4)
        + b"\r\n--B--\r\n"
    )
    r = raw(http, message, "message/rfc822", "interaction.ingest_email")
    assert "exceeds 4000000 bytes" in error(r, 413, "payload_too_large")["message"]
    assert snapshot(engine.store, account.account_id) == before


def test_raw_email_body_is_ingested(http: httpx.Client, call: Caller) -> None:
    message = b"From: Ada <ada@x.dev>\r\nTo: bob@y.dev\r\nSubject: hi\r\nMessage-ID: <m1@x>\r\n\r\nhello\r\n"
    r = raw(http, message, "message/rfc822", "interaction.ingest_email", create_contacts="true")
    assert r.status_code == 200, r.text
    assert {c["display_name"] for c in all_contacts(call)} >= {"Ada"}


def test_vcard_body_and_a_card_with_10000_emails(
    http: httpx.Client, call: Caller, engine: Engine, account: NewAccount
) -> None:
    card = "BEGIN:VCARD\r\nVERSION:3.0\r\nFN:Ada Lovelace\r\nEMAIL:ada@x.dev\r\nEND:VCARD\r\n"
    r = raw(http, card.encode(), "text/vcard", "contact.ingest_vcard")
    assert r.status_code == 200, r.text
    emails = "".join(f"EMAIL:p{n}@x.dev\r\n" for n in range(10_000))
    huge = f"BEGIN:VCARD\r\nVERSION:4.0\r\nFN:Many\r\n{emails}END:VCARD\r\n"
    ok(call("action.list", {"limit": 1}))
    before = snapshot(engine.store, account.account_id)
    r = upload(http, huge.encode(), op="contact.ingest_vcard")
    assert r.status_code == 200, r.text
    assert r.json()["failed"] == 1
    assert r.json()["report"][0]["code"] == "too_many_identities"
    after = snapshot(engine.store, account.account_id)
    assert after["contacts"] == before["contacts"]


def test_json_only_operations_refuse_files(http: httpx.Client) -> None:
    r = upload(http, CSV, op="contact.create")
    assert "contact.import_csv" in error(r, 415, "unsupported_media_type")["message"]


def test_malformed_multipart_is_typed(http: httpx.Client) -> None:
    r = http.post(
        "/v1/contact.import_csv",
        content=b"--X\r\nnonsense",
        headers={"Content-Type": "multipart/form-data; boundary=X"},
    )
    assert r.status_code == 400
    no_file = http.post("/v1/contact.import_csv", data={"on_match": "skip"}, files={"x": b"1"})
    assert error(no_file, 400, "invalid_argument")["param"] == "file"


# -- the streamed export ------------------------------------------------------------------------


def test_export_streams_csv_and_neutralizes_formulas(http: httpx.Client, call: Caller) -> None:
    ok(call("contact.create", {"display_name": '=HYPERLINK("http://evil","x")'}))
    for n in range(3):
        ok(call("contact.create", {"display_name": f"P{n}", "company": "+cmd|' /C calc'!A0"}))
    for response in (
        http.get("/v1/contact.export_csv"),
        http.post("/v1/contact.export_csv", json={}, headers={"Accept": "text/csv"}),
    ):
        assert response.status_code == 200, response.text
        assert response.headers["content-type"].startswith("text/csv")
        rows = list(csv.DictReader(io.StringIO(response.text)))
        assert len(rows) == 4
        assert rows[0]["display_name"] == '\'=HYPERLINK("http://evil","x")'
        assert all(r["company"].startswith("'+") for r in rows[1:])
    limited = http.get("/v1/contact.export_csv", params={"limit": "2"})
    assert len(list(csv.DictReader(io.StringIO(limited.text)))) == 2
    bad = http.get("/v1/contact.export_csv", params={"stage": "nope"})
    assert error(bad, 400, "invalid_argument")["param"] == "stage"
    assert httpx.get(f"{http.base_url}/v1/contact.export_csv").status_code == 401


def test_export_json_is_unchanged(http: httpx.Client, call: Caller) -> None:
    ok(call("contact.create", {"display_name": "Ada"}))
    r = http.post("/v1/contact.export_csv", json={})
    assert r.status_code == 200 and r.json()["rows"] == 1


def test_upload_limits_are_read_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    from krabs.bulk.uploads import max_line_bytes, max_upload_bytes

    assert max_upload_bytes() == 512 * 1024 * 1024
    monkeypatch.setenv("KRABS_MAX_UPLOAD_BYTES", "1000")
    monkeypatch.setenv("KRABS_MAX_LINE_BYTES", "nonsense")
    assert (max_upload_bytes(), max_line_bytes()) == (1000, 1024 * 1024)
    assert os.environ["KRABS_MAX_UPLOAD_BYTES"] == "1000"


# -- a large file as a background job: import.progress on the run's stream, job.get to poll -------


def test_import_progress_streams_on_the_run(
    http: httpx.Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    from httpx_sse import connect_sse

    from krabs.bulk import progress

    monkeypatch.setattr(progress, "EVERY_SECONDS", 0.0)
    run = http.post("/v1/run.create", json={"name": "big import"}).json()["id"]
    body = "email,name\n" + "".join(f"q{n}@x.dev,Q{n}\n" for n in range(2600))
    results: list[httpx.Response] = []

    def importer() -> None:
        time.sleep(0.5)
        results.append(
            http.post(
                "/v1/contact.import_csv",
                content=body.encode(),
                headers={"Content-Type": "text/csv", "X-Krabs-Run": run},
            )
        )
        http.post("/v1/run.close", json={"id": run})

    worker = threading.Thread(target=importer)
    events: list[dict[str, Any]] = []
    with connect_sse(http, "GET", f"/v1/runs/{run}/stream", timeout=60) as stream:
        worker.start()
        for sse in stream.iter_sse():
            if sse.data:
                events.append({"event": sse.event, "id": sse.id, **sse.json()})
    worker.join()
    assert results[0].status_code == 200, results[0].text
    kinds = [e["event"] for e in events]
    progress_events = [e for e in events if e["event"] == "import.progress"]
    assert [e["rows_done"] for e in progress_events] == [500, 1000, 1500, 2000, 2500, 2600]
    assert all(e["rows_total"] == 2600 for e in progress_events)
    assert kinds.index("import.progress") < kinds.index("tool_call")  # live, before the commit
    assert kinds[-1] == "run.completed"


def test_a_queued_import_is_polled_with_job_get(
    http: httpx.Client, call: Caller, engine: Engine
) -> None:
    from krabs.runs.jobs import ensure_worker

    ensure_worker(engine)  # what serving HTTP starts (the test server runs without lifespan)
    r = upload(http, CSV)  # store the file, then undo that import
    ref = ok(call("action.get", {"id": r.headers["X-Krabs-Action"]}))["args"]["upload"]
    ok(call("action.undo", {"undo_token": r.json()["undo_token"]}))
    job = http.post(
        "/v1/run.enqueue",
        json={"name": "import", "calls": [{"op": "contact.import_csv", "args": {"upload": ref}}]},
    )
    assert job.status_code == 200, job.text
    state = job.json()
    deadline = time.monotonic() + 60
    while state["status"] not in ("succeeded", "failed") and time.monotonic() < deadline:
        time.sleep(0.2)
        state = http.post("/v1/job.get", json={"id": state["id"]}).json()
    assert state["status"] == "succeeded", state
    assert state["result"]["results"][0]["result"]["created"] == 2


def test_job_get_shows_a_running_imports_progress(
    http: httpx.Client, call: Caller, engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The import holds its transaction to the end, so job.get reads the counts from the process:
    held after its first batch, the import shows rows done, total and failed; once over, none.
    On SQLite the import holds the single writer meanwhile: job.get answers anyway, its own run
    event spooled until the writer is free."""
    from krabs.ops import contact_import
    from krabs.runs.jobs import ensure_worker

    real = contact_import.progress_events
    release = threading.Event()

    def held(uow: Any, total: int | None, every: float | None = None) -> Any:
        report = real(uow, total, every)

        def once(done: int, failed: int) -> None:
            report(done, failed)
            release.wait(30)

        return once

    body = "email,name\n" + "".join(f"p{n}@x.dev,P{n}\n" for n in range(1200))
    r = upload(http, body.replace("p7@x.dev", "not-an-email").encode())  # store the file, undo
    ref = ok(call("action.get", {"id": r.headers["X-Krabs-Action"]}))["args"]["upload"]
    ok(call("action.undo", {"undo_token": r.json()["undo_token"]}))
    monkeypatch.setattr(contact_import, "progress_events", held)
    ensure_worker(engine)
    job = http.post(
        "/v1/run.enqueue",
        json={"calls": [{"op": "contact.import_csv", "args": {"upload": ref}}]},
    ).json()
    try:
        state, deadline = job, time.monotonic() + 30
        while state.get("progress") is None and time.monotonic() < deadline:
            time.sleep(0.1)
            state = http.post("/v1/job.get", json={"id": job["id"]}).json()
        assert state["status"] == "running", state
        assert state["progress"] == {"rows_done": 501, "rows_failed": 1, "rows_total": 1200}
    finally:
        release.set()
    deadline = time.monotonic() + 60
    while state["status"] not in ("succeeded", "failed") and time.monotonic() < deadline:
        time.sleep(0.1)
        state = http.post("/v1/job.get", json={"id": job["id"]}).json()
    assert state["status"] == "succeeded", state
    assert state["progress"] is None
    assert state["result"]["results"][0]["result"]["created"] == 1199
