"""Scenarios for the signed audit log: each pins the tree size it reads, so every transport sees the
same answer while other scenarios keep writing."""

from __future__ import annotations

from typing import Any

from krabs.compliance.scenarios import Setup, scenario
from krabs.compliance.scenarios.contacts import new_contact


def _recorded(setup: Setup) -> dict[str, Any]:
    """A fresh action and its record."""
    contact = new_contact(setup)
    page = setup("action.list", {"target": contact["id"], "limit": 1})
    return dict(page["data"][0])


@scenario("audit.checkpoint")
def _checkpoint(setup: Setup) -> dict[str, Any]:
    _recorded(
        setup
    )  # a write makes sure a checkpoint exists (the first, or one 60 s after the last)
    return {"tree_size": setup("audit.checkpoint", {})["tree_size"]}


@scenario("audit.key")
def _key(setup: Setup) -> dict[str, Any]:
    _recorded(setup)
    return {}


@scenario("audit.proof")
def _proof(setup: Setup) -> dict[str, Any]:
    action = _recorded(setup)
    return {"action": action["id"], "tree_size": action["seq"]}


@scenario("audit.records")
def _records(setup: Setup) -> dict[str, Any]:
    action = _recorded(setup)
    return {"after_seq": action["seq"] - 1, "limit": 1}
