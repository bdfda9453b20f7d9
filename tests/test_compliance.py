"""``krabs compliance`` against a real ``krabs serve`` process: the whole contract passes over HTTP,
the CLI and MCP legs agree with HTTP, and the suite fails when a property is broken."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import pytest
from rich.console import Console

from krabs.compliance import runner
from krabs.compliance.checks import Probe
from krabs.compliance.legs import HttpLeg, Reply
from krabs.compliance.scenarios import load_scenarios
from krabs.contract.registry import load_registry
from test_serve import start, stop

KEY = "krabs_sk_compliancetest0000000000000000"
REGISTRY = load_registry()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    proc, url = start(
        tmp_path_factory.mktemp("compliance"),
        KRABS_BOOTSTRAP_KEY=KEY,
        KRABS_RATE_LIMIT_PER_SECOND="0",
        KRABS_VALIDATE_OUTPUT="1",
    )
    try:
        yield url
    finally:
        stop(proc)


#: Under a loaded machine the all-transports pass (three legs per operation) can take minutes.
COMPLIANCE_TIMEOUT = 540


def compliance(url: str, *argv: str, report: Any = None) -> subprocess.CompletedProcess[str]:
    extra = ["--report", str(report)] if report else []
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "krabs",
            "compliance",
            "--url",
            url,
            "--api-key",
            KEY,
            *argv,
            *extra,
        ],
        capture_output=True,
        text=True,
        timeout=COMPLIANCE_TIMEOUT,
        env={**os.environ, "COLUMNS": "200"},
    )


def test_every_operation_passes_over_http(server, tmp_path):
    path = tmp_path / "report.json"
    done = compliance(server, "--transport", "http", report=path)
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    assert "compliant" in done.stdout and "not compliant" not in done.stdout
    report = json.loads(path.read_text())
    rows = {row["op"]: row["properties"] for row in report["rows"]}
    assert set(rows) == set(REGISTRY.names()), "every operation of /v1/schema is exercised"
    for op in REGISTRY:
        statuses = {p: c["status"] for p, c in rows[op.name].items()}
        expected = ("intent", "idempotency", "dry_run", "schema", "audit")
        if not op.mutates:
            expected = ("intent", "schema", "audit")
            assert statuses["idempotency"] == statuses["dry_run"] == "n/a"
        assert all(statuses[p] == "pass" for p in expected), (op.name, statuses)


def _legs_agree(report_path: Any, transports: set[str]) -> None:
    report = json.loads(report_path.read_text())
    assert {row["transport"] for row in report["rows"]} == transports
    for row in report["rows"]:
        if row["transport"] != "http":
            assert row["properties"]["parity"]["status"] == "pass", row


@pytest.mark.timeout(COMPLIANCE_TIMEOUT + 30)
def test_every_operation_over_all_three_transports(server, tmp_path):
    """`krabs compliance --transport all`: every operation over HTTP, the CLI (remote mode, a
    subprocess per call) and MCP (streamable HTTP), with identical results apart from ids."""
    path = tmp_path / "all.json"
    done = compliance(server, "--transport", "all", report=path)
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    _legs_agree(path, {"http", "cli", "mcp"})
    report = json.loads(path.read_text())
    for transport in ("cli", "mcp"):
        covered = {row["op"] for row in report["rows"] if row["transport"] == transport}
        assert covered == set(REGISTRY.names()), f"{transport} leg skipped operations"


def _run(server: str, **options: Any) -> tuple[bool, str]:
    buffer = io.StringIO()
    failed = runner.run_compliance(server, KEY, console=Console(file=buffer, width=200), **options)
    return failed, buffer.getvalue()


def test_an_operation_without_a_scenario_fails_the_run(server, monkeypatch):
    scenarios = {k: v for k, v in load_scenarios().items() if k != "contact.get"}
    monkeypatch.setattr(runner, "load_scenarios", lambda: scenarios)
    failed, text = _run(server, only=("contact.get", "contact.list"))
    assert failed and "contact.get [http]" in text and "no compliance scenario" in text
    assert "contact.list [http]" not in text


def test_mcp_leg_missing_fails_clearly(server, monkeypatch):
    monkeypatch.setitem(sys.modules, "krabs.compliance.mcp_leg", None)
    failed, text = _run(server, transports=("mcp",), only=("contact.get",))
    assert failed and "MCP leg is not available" in text


class Faulty:
    """A transport that breaks one property, to prove the suite notices."""

    name = "faulty"

    def __init__(self, http: HttpLeg, fault: str) -> None:
        self.http, self.fault = http, fault

    def call(
        self,
        op: str,
        args: dict[str, Any],
        *,
        idempotency_key: str | None = None,
        dry_run: bool = False,
    ) -> Reply:
        if self.fault == "drops_key":
            idempotency_key = None
        if self.fault == "ignores_dry_run":
            dry_run = False
        if self.fault == "renames_args" and "display_name" in args:
            args = {**args, "display_name": args["display_name"] + "!"}
        reply = self.http.call(op, args, idempotency_key=idempotency_key, dry_run=dry_run)
        if self.fault == "tampers" and reply.result and "display_name" in reply.result:
            reply.result = {**reply.result, "display_name": "tampered"}
        return reply


@pytest.mark.parametrize(
    ("fault", "broken"),
    [
        ("drops_key", "idempotency"),
        ("ignores_dry_run", "dry_run"),
        ("renames_args", "idempotency"),
        ("tampers", "parity"),
    ],
)
def test_a_faulty_transport_is_caught(server, fault, broken):
    http = HttpLeg(server, KEY)
    entry = http.schema["operations"]["contact.create"]
    row = runner.check_leg(
        Faulty(http, fault), http, Probe(http, http.schema), "contact.create", entry,
        load_scenarios()["contact.create"],
    )  # fmt: skip
    assert row.cells[broken].status == "fail", row.cells
    honest = runner.check_leg(
        Faulty(http, "none"), http, Probe(http, http.schema), "contact.create", entry,
        load_scenarios()["contact.create"],
    )  # fmt: skip
    assert not honest.failed, honest.cells
