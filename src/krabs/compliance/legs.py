"""The transports the compliance suite speaks: HTTP (through the Python SDK), the ``krabs`` CLI in
remote mode (a real subprocess per call) and MCP (``krabs.compliance.mcp_leg``). Each turns one call
into a ``Reply`` so the runner can compare them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from krabs.client import Client
from krabs.client_errors import KrabsAPIError


@dataclass
class Reply:
    result: dict[str, Any] | None = None
    error: dict[str, Any] | None = None
    replayed: bool = False
    action_id: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None and self.result is not None

    @property
    def code(self) -> str | None:
        return None if self.error is None else str(self.error.get("code"))

    def describe(self) -> str:
        if self.error is not None:
            return f"{self.error.get('code')}: {self.error.get('message')} (param {self.error.get('param')})"
        return "ok"


class LegUnavailable(Exception):
    """The transport cannot be exercised at all (e.g. its client is not installed)."""


class Leg(Protocol):
    name: str

    def call(
        self,
        op: str,
        args: dict[str, Any],
        *,
        idempotency_key: str | None = None,
        dry_run: bool = False,
    ) -> Reply: ...


class ScenarioFailed(Exception):
    """A scenario's setup call failed, so the operation could not be exercised."""


class HttpLeg:
    name = "http"

    def __init__(self, url: str, api_key: str) -> None:
        self.client = Client(url, api_key, run="", max_retries=5)

    @property
    def schema(self) -> dict[str, Any]:
        return self.client.schema

    def call(
        self,
        op: str,
        args: dict[str, Any],
        *,
        idempotency_key: str | None = None,
        dry_run: bool = False,
    ) -> Reply:
        try:
            response = self.client.request(
                op, args, dry_run=dry_run, idempotency_key=idempotency_key
            )
        except KrabsAPIError as exc:
            return Reply(error=exc.to_dict())
        return Reply(response.result, None, response.replayed, response.action_id)

    def setup(self, op: str, args: dict[str, Any]) -> dict[str, Any]:
        """The scenarios' ``setup``: a call that must succeed."""
        reply = self.call(op, args)
        if not reply.ok:
            raise ScenarioFailed(f"setup call {op} failed: {reply.describe()}")
        assert reply.result is not None
        return reply.result


class CliLeg:
    """``krabs <noun> <verb> … -o json`` in remote mode, as a user's shell would run it."""

    name = "cli"

    def __init__(self, url: str, api_key: str, schema: dict[str, Any]) -> None:
        self.schema = schema
        self.env = {
            k: v for k, v in os.environ.items() if k not in ("KRABS_RUN_ID", "KRABS_OUTPUT")
        }
        self.env.update(KRABS_URL=url, KRABS_API_KEY=api_key)

    def call(
        self,
        op: str,
        args: dict[str, Any],
        *,
        idempotency_key: str | None = None,
        dry_run: bool = False,
    ) -> Reply:
        from krabs.transports.cli import args_to_argv

        noun, verb = op.split(".", 1)
        entry = self.schema["operations"][op]
        argv = [sys.executable, "-m", "krabs", noun, verb, *args_to_argv(entry, args), "-o", "json"]
        if dry_run:
            argv.append("--dry-run")
        if idempotency_key:
            argv += ["--idempotency-key", idempotency_key]
        proc = subprocess.run(argv, env=self.env, capture_output=True, text=True, timeout=120)
        if proc.returncode == 0:
            return Reply(result=json.loads(proc.stdout))
        lines = [line for line in proc.stderr.strip().splitlines() if line.startswith('{"error"')]
        if not lines:
            detail = (proc.stderr or proc.stdout).strip()[-400:]
            return Reply(
                error={"code": "cli_failed", "message": f"exit {proc.returncode}: {detail}"}
            )
        error = dict(json.loads(lines[-1])["error"])
        error["exit_code"] = proc.returncode
        return Reply(error=error)


class McpLeg:
    name = "mcp"

    def __init__(self, url: str, api_key: str) -> None:
        try:
            from krabs.compliance.mcp_leg import call_over_mcp_sync
        except ImportError as exc:
            raise LegUnavailable(
                f"the MCP leg is not available in this installation ({exc}); "
                "krabs.compliance.mcp_leg.call_over_mcp_sync is required"
            ) from exc
        self.url, self.api_key = url, api_key
        self._call: Callable[..., dict[str, Any]] = call_over_mcp_sync

    def call(
        self,
        op: str,
        args: dict[str, Any],
        *,
        idempotency_key: str | None = None,
        dry_run: bool = False,
    ) -> Reply:
        body = {**args, "dry_run": True} if dry_run else dict(args)
        try:
            out = self._call(self.url, self.api_key, op, body, idempotency_key=idempotency_key)
        except Exception as exc:
            return Reply(error={"code": "mcp_failed", "message": f"{type(exc).__name__}: {exc}"})
        meta = out.get("meta") or {}
        if out.get("error") is not None:
            return Reply(error=dict(out["error"]))
        return Reply(
            result=out.get("result"),
            replayed=bool(meta.get("replayed")),
            action_id=meta.get("action_id"),
        )
