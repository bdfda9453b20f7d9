"""Scenarios for tags (create, list, update, delete, attach, detach) and contact.merge."""

from __future__ import annotations

from typing import Any

from krabs.compliance.scenarios import Setup, scenario, unique
from krabs.compliance.scenarios.contacts import new_contact


def new_tag(setup: Setup, **fields: Any) -> dict[str, Any]:
    return setup("tag.create", {"name": unique("Tag "), "color": "#FF8800", **fields})


def tagged_contact(setup: Setup) -> tuple[dict[str, Any], dict[str, Any]]:
    tag, contact = new_tag(setup), new_contact(setup)
    setup("tag.attach", {"tag": tag["id"], "target_id": contact["id"]})
    return tag, contact


@scenario("tag.create")
def _create(setup: Setup) -> dict[str, Any]:
    return {"name": unique("VIP "), "color": "#00AA55", "description": "Top accounts"}


@scenario("tag.list")
def _list(setup: Setup) -> dict[str, Any]:
    _, contact = tagged_contact(setup)
    return {"target_id": contact["id"], "limit": 5}


@scenario("tag.update")
def _update(setup: Setup) -> dict[str, Any]:
    return {"id": new_tag(setup)["id"], "name": unique("Renamed "), "color": "#123abc"}


@scenario("tag.delete")
def _delete(setup: Setup) -> dict[str, Any]:
    tag, _ = tagged_contact(setup)
    return {"id": tag["id"]}


@scenario("tag.attach")
def _attach(setup: Setup) -> dict[str, Any]:
    tag = new_tag(setup)
    first, second = new_contact(setup), new_contact(setup)
    return {
        "tag": tag["name"].upper(),
        "targets": [
            {"target_type": "contact", "target_id": first["id"]},
            {"target_id": second["id"]},
        ],
    }


@scenario("tag.detach")
def _detach(setup: Setup) -> dict[str, Any]:
    tag, contact = tagged_contact(setup)
    return {"tag": tag["id"], "target_type": "contact", "target_id": contact["id"]}


@scenario("contact.merge")
def _merge(setup: Setup) -> dict[str, Any]:
    tag, survivor = tagged_contact(setup)
    duplicate = new_contact(setup, company="Analytical Engines", attributes={"tier": 1})
    setup("tag.attach", {"tag": tag["id"], "target_id": duplicate["id"]})
    return {
        "survivor_id": survivor["id"],
        "merged_ids": [duplicate["id"]],
        "prefer": {"display_name": duplicate["id"]},
    }
