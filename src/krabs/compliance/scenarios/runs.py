"""Scenarios for the run lifecycle and spans: create, read, list, close, cancel, upload and list
spans."""

from __future__ import annotations

from typing import Any

from krabs.compliance.scenarios import Setup, scenario, unique


def open_run(setup: Setup) -> str:
    """A fresh open run's id."""
    return str(setup("run.create", {"name": unique("compliance run ")})["id"])


SPAN = {
    "node_name": "plan",
    "span_kind": "LLM",
    "model": "test-model",
    "input_text": "in",
    "output_text": "out",
    "latency_ms": 12.5,
    "input_tokens": 10,
    "output_tokens": 5,
    "cost_usd": 0.0001,
}


@scenario("run.create")
def _create(setup: Setup) -> dict[str, Any]:
    return {"name": unique("outreach pass ")}


@scenario("run.get")
def _get(setup: Setup) -> dict[str, Any]:
    return {"id": open_run(setup)}


@scenario("run.list")
def _list(setup: Setup) -> dict[str, Any]:
    open_run(setup)
    return {"status": "open", "limit": 5}


@scenario("run.close")
def _close(setup: Setup) -> dict[str, Any]:
    return {"id": open_run(setup), "reason": "compliance check"}


@scenario("run.cancel")
def _cancel(setup: Setup) -> dict[str, Any]:
    return {"id": open_run(setup)}


@scenario("run.add_spans")
def _add_spans(setup: Setup) -> dict[str, Any]:
    return {"run_id": open_run(setup), "spans": [SPAN]}


@scenario("run.list_spans")
def _list_spans(setup: Setup) -> dict[str, Any]:
    run_id = open_run(setup)
    setup("run.add_spans", {"run_id": run_id, "spans": [SPAN, {**SPAN, "node_name": "act"}]})
    return {"run_id": run_id, "limit": 10}
