"""Scenarios for the activity around contacts: interactions (and email ingestion), tasks, notes."""

from __future__ import annotations

from typing import Any

from krabs.compliance.scenarios import Setup, scenario, unique
from krabs.compliance.scenarios.contacts import new_contact


def new_interaction(setup: Setup) -> dict[str, Any]:
    contact = new_contact(setup)
    return setup(
        "interaction.create",
        {
            "kind": "call",
            "direction": "outbound",
            "subject": "Scenario call",
            "participants": [{"contact_id": contact["id"]}],
            "external_id": unique("call-"),
        },
    )


@scenario("interaction.create")
def _interaction_create(setup: Setup) -> dict[str, Any]:
    contact = new_contact(setup)
    return {
        "kind": "meeting",
        "direction": "internal",
        "occurred_at": "2026-05-16T14:00:00Z",
        "subject": "Quarterly review",
        "body": "Went through the **numbers**.",
        "participants": [{"contact_id": contact["id"], "role": "participant"}],
        "external_id": unique("cal-"),
        "source": "calendar",
    }


@scenario("interaction.list")
def _interaction_list(setup: Setup) -> dict[str, Any]:
    created = new_interaction(setup)
    return {"contact_id": created["participants"][0]["contact_id"], "limit": 5}


@scenario("interaction.delete")
def _interaction_delete(setup: Setup) -> dict[str, Any]:
    return {"id": new_interaction(setup)["id"]}


@scenario("interaction.ingest_email")
def _ingest_email(setup: Setup) -> dict[str, Any]:
    sender = f"{unique('s')}@example.com"
    raw = (
        f"From: Scenario Sender <{sender}>\r\n"
        "To: Sales <sales@example.com>\r\n"
        "Subject: =?utf-8?q?Pr=C3=A9sentation?=\r\n"
        "Date: Tue, 12 May 2026 09:30:00 +0200\r\n"
        f"Message-ID: <{unique('m')}@example.com>\r\n"
        "\r\n"
        "Could we meet next week?\r\n"
    )
    return {"raw": raw, "own_addresses": ["sales@example.com"], "create_contacts": True}


def new_task(setup: Setup) -> dict[str, Any]:
    return setup("task.create", {"title": f"Scenario task {unique()}"})


@scenario("task.create")
def _task_create(setup: Setup) -> dict[str, Any]:
    return {
        "title": "Send the proposal",
        "description": "Include the *annual* plan.",
        "due_at": "2026-05-20T17:00:00Z",
        "priority": "high",
        "assignee": "agent_sales",
        "contact_id": new_contact(setup)["id"],
    }


@scenario("task.get")
def _task_get(setup: Setup) -> dict[str, Any]:
    return {"id": new_task(setup)["id"]}


@scenario("task.list")
def _task_list(setup: Setup) -> dict[str, Any]:
    new_task(setup)
    return {"status": "open", "limit": 5}


@scenario("task.update")
def _task_update(setup: Setup) -> dict[str, Any]:
    return {"id": new_task(setup)["id"], "status": "done", "priority": "urgent"}


@scenario("task.delete")
def _task_delete(setup: Setup) -> dict[str, Any]:
    return {"id": new_task(setup)["id"]}


def new_note(setup: Setup) -> dict[str, Any]:
    return setup("note.create", {"body": f"Scenario note {unique()}"})


@scenario("note.create")
def _note_create(setup: Setup) -> dict[str, Any]:
    return {"body": "Prefers email. **Budget** approved.", "contact_id": new_contact(setup)["id"]}


@scenario("note.get")
def _note_get(setup: Setup) -> dict[str, Any]:
    return {"id": new_note(setup)["id"]}


@scenario("note.list")
def _note_list(setup: Setup) -> dict[str, Any]:
    new_note(setup)
    return {"limit": 5}


@scenario("note.update")
def _note_update(setup: Setup) -> dict[str, Any]:
    return {"id": new_note(setup)["id"], "body": "Updated: budget moved to Q4."}


@scenario("note.delete")
def _note_delete(setup: Setup) -> dict[str, Any]:
    return {"id": new_note(setup)["id"]}
