"""Scenario for ``run.undo``. A scenario's calls cannot name a run (``X-Krabs-Run`` is not an
argument), so the run it undoes is a fresh one from ``run.create``: the call proves the contract
(plan, replay, audit, the undo token that re-applies it) on every transport; what undoing real
writes does is proved in tests/test_run_undo.py, over the engine and over HTTP."""

from __future__ import annotations

from typing import Any

from krabs.compliance.scenarios import Setup, scenario, unique


@scenario("run.undo")
def _run_undo(setup: Setup) -> dict[str, Any]:
    run = setup("run.create", {"name": unique("to undo ")})
    return {"id": run["id"]}
