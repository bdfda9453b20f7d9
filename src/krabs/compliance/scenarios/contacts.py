"""Scenarios for contacts and identities."""

from __future__ import annotations

from typing import Any

from krabs.compliance.scenarios import Setup, scenario, unique


def new_contact(setup: Setup, **fields: Any) -> dict[str, Any]:
    email = f"{unique('c')}@example.com"
    return setup(
        "contact.create",
        {
            "display_name": "Scenario Contact",
            **fields,
            "identities": [{"kind": "email", "value": email}],
        },
    )


@scenario("contact.create")
def _create(setup: Setup) -> dict[str, Any]:
    return {
        "display_name": "Ada Lovelace",
        "company": "Analytical Engines",
        "stage": "lead",
        "identities": [{"kind": "email", "value": f"{unique('ada')}@lovelace.dev"}],
    }


@scenario("contact.get")
def _get(setup: Setup) -> dict[str, Any]:
    return {"id": new_contact(setup)["id"]}


@scenario("contact.list")
def _list(setup: Setup) -> dict[str, Any]:
    new_contact(setup)
    return {"limit": 5}


@scenario("contact.update")
def _update(setup: Setup) -> dict[str, Any]:
    return {"id": new_contact(setup)["id"], "stage": "customer", "title": "CTO"}


@scenario("contact.delete")
def _delete(setup: Setup) -> dict[str, Any]:
    return {"id": new_contact(setup)["id"]}


@scenario("contact.find_by_identity")
def _find(setup: Setup) -> dict[str, Any]:
    contact = new_contact(setup)
    value = contact["identities"][0]["value"].upper()
    return {"identity": {"kind": "email", "value": value}}


@scenario("contact.upsert")
def _upsert(setup: Setup) -> dict[str, Any]:
    return {
        "identity": {"kind": "email", "value": f"{unique('up')}@example.com"},
        "given_name": "Up",
    }


@scenario("identity.add")
def _identity_add(setup: Setup) -> dict[str, Any]:
    return {
        "contact_id": new_contact(setup)["id"],
        "kind": "email",
        "value": f"{unique('second')}@example.org",
    }


@scenario("identity.list")
def _identity_list(setup: Setup) -> dict[str, Any]:
    return {"contact_id": new_contact(setup)["id"]}


@scenario("identity.remove")
def _identity_remove(setup: Setup) -> dict[str, Any]:
    return {"id": new_contact(setup)["identities"][0]["id"]}
