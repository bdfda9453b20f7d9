"""One scenario per operation: given a way to call the contract, it sets up what the operation needs
(a contact to delete, a tag to attach) and returns arguments that make one valid call. The registry-
wide property tests and the compliance suite run every operation through its scenario, and fail
for an operation that has none."""

from __future__ import annotations

import importlib
import pkgutil
import uuid
from collections.abc import Callable
from typing import Any

#: ``setup(op, args) -> result``: calls the contract and raises if the call fails.
Setup = Callable[[str, dict[str, Any]], dict[str, Any]]
Scenario = Callable[[Setup], dict[str, Any]]

SCENARIOS: dict[str, Scenario] = {}


def scenario(op: str) -> Callable[[Scenario], Scenario]:
    def register(fn: Scenario) -> Scenario:
        if op in SCENARIOS:
            raise ValueError(f"scenario for {op!r} registered twice")
        SCENARIOS[op] = fn
        return fn

    return register


def unique(prefix: str = "x") -> str:
    """A short unique token, so scenarios never collide with data already in the account."""
    return f"{prefix}{uuid.uuid4().hex[:12]}"


def load_scenarios() -> dict[str, Scenario]:
    """Import every scenario module of this package once."""
    for info in pkgutil.iter_modules(__path__):
        importlib.import_module(f"{__name__}.{info.name}")
    return SCENARIOS
