"""Scenarios for API keys and the audit log."""

from __future__ import annotations

from typing import Any

from krabs.compliance.scenarios import Setup, scenario
from krabs.compliance.scenarios.contacts import new_contact


@scenario("api_key.create")
def _key_create(setup: Setup) -> dict[str, Any]:
    return {"name": "compliance key", "scopes": ["read"]}


@scenario("api_key.list")
def _key_list(setup: Setup) -> dict[str, Any]:
    return {"limit": 5}


@scenario("api_key.revoke")
def _key_revoke(setup: Setup) -> dict[str, Any]:
    return {"id": setup("api_key.create", {"name": "to revoke", "scopes": ["read"]})["id"]}


def _some_action(setup: Setup) -> str:
    contact = new_contact(setup)
    page = setup("action.list", {"target": contact["id"], "limit": 1})
    return str(page["data"][0]["id"])


@scenario("action.get")
def _action_get(setup: Setup) -> dict[str, Any]:
    return {"id": _some_action(setup)}


@scenario("action.list")
def _action_list(setup: Setup) -> dict[str, Any]:
    _some_action(setup)
    return {"op": "contact.create", "limit": 5}


@scenario("action.undo")
def _action_undo(setup: Setup) -> dict[str, Any]:
    contact = new_contact(setup)
    deleted = setup("contact.delete", {"id": contact["id"]})
    return {"undo_token": deleted["undo_token"]}
