"""Interactions through the real engine, on SQLite and PostgreSQL: create (participants, the
external-id no-op), list filters and cursor, soft delete with undo, tombstone links to deleted
contacts, hostile arguments and account isolation."""

from __future__ import annotations

from typing import Any

import pytest

from activity_helpers import UNKNOWN_CONTACT, count, delete_contact, ids, new_contact, walk
from conftest import Caller, err, ok
from krabs.accounts import NewAccount, create_account
from krabs.engine import Engine
from krabs.store.tables import interaction_participants, interactions


@pytest.fixture
def other(engine: Engine) -> NewAccount:
    return create_account(engine.store, "other")


def record(call: Caller, **args: Any) -> dict[str, Any]:
    return ok(call("interaction.create", {"kind": "call", "direction": "outbound", **args}))


def listed(call: Caller, **args: Any) -> list[str]:
    return ids(ok(call("interaction.list", args)))


# -- create ----------------------------------------------------------------------------------------


def test_create_round_trips_every_field(call: Caller) -> None:
    ada, bob = new_contact(call, "Ada"), new_contact(call, "Bob")
    fields: dict[str, Any] = {
        "kind": "email",
        "direction": "inbound",
        "occurred_at": "2026-05-16T16:22:08+02:00",
        "subject": "Pricing question",
        "body": "Hello,\n\n**How much** is the engine?\n",
        "external_id": "<m1@lovelace.dev>",
        "thread_id": "<m1@lovelace.dev>",
        "source": "gmail",
        "attributes": {"labels": ["inbox"], "score": 0.5},
    }
    created = ok(
        call(
            "interaction.create",
            {
                **fields,
                "participants": [
                    {"contact_id": ada, "role": "from"},
                    {"contact_id": bob, "role": "to"},
                    {"contact_id": bob},
                    {"contact_id": ada, "role": "from"},
                ],
            },
        )
    )
    assert created["object"] == "interaction"
    assert created["id"].startswith("ix_")
    assert created["deduplicated"] is False
    assert created["occurred_at"] == "2026-05-16T14:22:08.000000Z"
    assert created["body"] == fields["body"].strip()
    assert {k: created[k] for k in fields if k not in ("occurred_at", "body")} == {
        k: v for k, v in fields.items() if k not in ("occurred_at", "body")
    }
    # A repeated {contact_id, role} is kept once, in the order given.
    assert created["participants"] == [
        {"contact_id": ada, "role": "from"},
        {"contact_id": bob, "role": "to"},
        {"contact_id": bob, "role": "participant"},
    ]
    [listed_one] = ok(call("interaction.list", {}))["data"]
    assert listed_one == {k: v for k, v in created.items() if k != "deduplicated"}


def test_minimal_create_defaults_to_now(call: Caller) -> None:
    created = record(call)
    assert created["occurred_at"] == created["created_at"] == created["updated_at"]
    assert created["participants"] == []
    assert created["attributes"] == {}
    assert created["subject"] is created["body"] is created["external_id"] is None


def test_repeated_external_id_is_a_no_op_returning_the_first(
    call: Caller, engine: Engine, account: NewAccount
) -> None:
    ada = new_contact(call)
    first = record(call, subject="first", external_id="crm-42", participants=[{"contact_id": ada}])
    second = record(call, subject="second", kind="meeting", external_id="crm-42")
    assert second["deduplicated"] is True
    assert second["id"] == first["id"]
    assert {k: v for k, v in second.items() if k != "deduplicated"} == {
        k: v for k, v in first.items() if k != "deduplicated"
    }
    assert count(engine.store, interactions, account.account_id) == 1
    assert count(engine.store, interaction_participants, account.account_id) == 1
    # Both calls are audited (the second one wrote nothing).
    ops = [a["op"] for a in ok(call("action.list", {"op": "interaction.create"}))["data"]]
    assert ops == ["interaction.create", "interaction.create"]
    # Once deleted, the external id is free again.
    ok(call("interaction.delete", {"id": first["id"]}))
    third = record(call, external_id="crm-42")
    assert third["deduplicated"] is False and third["id"] != first["id"]


def test_participants_must_be_live_contacts_of_this_account(
    call: Caller, engine: Engine, account: NewAccount, other: NewAccount
) -> None:
    ada, gone = new_contact(call), new_contact(call)
    delete_contact(call, gone)
    theirs = new_contact(lambda op, a: call(op, a, key=other.secret))
    for bad in (UNKNOWN_CONTACT, gone, theirs):
        e = err(
            call(
                "interaction.create",
                {
                    "kind": "call",
                    "direction": "inbound",
                    "participants": [{"contact_id": ada}, {"contact_id": bad, "role": "to"}],
                },
            ),
            "not_found",
        )
        assert e["param"] == "participants.1.contact_id"
        assert bad in e["message"]
    assert count(engine.store, interactions, account.account_id) == 0


# -- list ------------------------------------------------------------------------------------------


def test_list_filters(call: Caller) -> None:
    ada, bob = new_contact(call, "Ada"), new_contact(call, "Bob")
    a = record(
        call,
        kind="email",
        direction="inbound",
        occurred_at="2026-01-10T10:00:00Z",
        thread_id="t1",
        external_id="e1",
        participants=[{"contact_id": ada, "role": "from"}],
    )
    b = record(
        call,
        kind="email",
        direction="outbound",
        occurred_at="2026-02-10T10:00:00Z",
        thread_id="t1",
        participants=[{"contact_id": ada, "role": "to"}, {"contact_id": bob, "role": "cc"}],
    )
    c = record(call, kind="meeting", direction="internal", occurred_at="2026-03-10T10:00:00Z")
    assert listed(call) == [c["id"], b["id"], a["id"]]
    assert listed(call, contact_id=ada) == [b["id"], a["id"]]
    assert listed(call, contact_id=bob) == [b["id"]]
    assert listed(call, contact_id=UNKNOWN_CONTACT) == []
    assert listed(call, kind="email") == [b["id"], a["id"]]
    assert listed(call, kind="message") == []
    assert listed(call, direction="internal") == [c["id"]]
    assert listed(call, since="2026-02-10T10:00:00Z") == [c["id"], b["id"]]
    assert listed(call, until="2026-02-10T10:00:00Z") == [a["id"]]
    assert listed(call, since="2026-02-01", until="2026-03-01") == [b["id"]]
    assert listed(call, thread_id="t1") == [b["id"], a["id"]]
    assert listed(call, external_id="e1") == [a["id"]]
    assert listed(call, kind="email", direction="outbound", contact_id=bob) == [b["id"]]


def test_list_pages_with_a_cursor(call: Caller) -> None:
    made = [record(call, subject=f"n{i}")["id"] for i in range(7)]
    assert walk(call, "interaction.list", {}, limit=3) == list(reversed(made))
    first = ok(call("interaction.list", {"limit": 7}))
    assert first["has_more"] is False and first["next_cursor"] is None


# -- delete, undo, tombstones ----------------------------------------------------------------------


def test_delete_is_soft_and_undoable(call: Caller, engine: Engine, account: NewAccount) -> None:
    ada = new_contact(call)
    kept = record(call, participants=[{"contact_id": ada}])
    gone = record(call, participants=[{"contact_id": ada}], external_id="x-1")
    removed = ok(call("interaction.delete", {"id": gone["id"]}))
    assert removed["id"] == gone["id"] and removed["deleted"] is True
    assert removed["undo_token"].startswith("undo_")
    assert listed(call) == [kept["id"]]
    assert listed(call, contact_id=ada) == [kept["id"]]
    assert count(engine.store, interactions, account.account_id) == 2  # still there, soft
    err(call("interaction.delete", {"id": gone["id"]}), "not_found")
    ok(call("action.undo", {"undo_token": removed["undo_token"]}))
    assert listed(call) == [gone["id"], kept["id"]]
    [restored] = [i for i in ok(call("interaction.list", {}))["data"] if i["id"] == gone["id"]]
    assert restored == {k: v for k, v in gone.items() if k != "deduplicated"}
    # Restored, it holds its external id again.
    assert record(call, external_id="x-1")["id"] == gone["id"]


def test_deleted_contacts_stay_as_tombstone_links(call: Caller) -> None:
    ada = new_contact(call)
    ix = record(call, participants=[{"contact_id": ada, "role": "to"}])
    delete_contact(call, ada)
    [still] = ok(call("interaction.list", {"contact_id": ada}))["data"]
    assert still["id"] == ix["id"]
    assert still["participants"] == [{"contact_id": ada, "role": "to"}]
    e = err(
        call(
            "interaction.create",
            {"kind": "call", "direction": "outbound", "participants": [{"contact_id": ada}]},
        ),
        "not_found",
    )
    assert e["param"] == "participants.0.contact_id"


# -- isolation and hostile input -------------------------------------------------------------------


def test_other_accounts_see_nothing(call: Caller, other: NewAccount) -> None:
    ada = new_contact(call)
    mine = record(call, external_id="shared-id", participants=[{"contact_id": ada}])
    as_other = lambda op, args: call(op, args, key=other.secret)  # noqa: E731
    assert ids(ok(as_other("interaction.list", {}))) == []
    assert ids(ok(as_other("interaction.list", {"contact_id": ada}))) == []
    err(as_other("interaction.delete", {"id": mine["id"]}), "not_found")
    # External ids are unique per account, not globally.
    theirs = ok(
        as_other(
            "interaction.create",
            {"kind": "call", "direction": "inbound", "external_id": "shared-id"},
        )
    )
    assert theirs["deduplicated"] is False and theirs["id"] != mine["id"]
    assert listed(call) == [mine["id"]]


@pytest.mark.parametrize(
    ("args", "param"),
    [
        ({"kind": "fax", "direction": "inbound"}, "kind"),
        ({"kind": "call"}, "direction"),
        ({"direction": "inbound"}, "kind"),
        ({"kind": "call", "direction": "sideways"}, "direction"),
        ({"kind": "call", "direction": "inbound", "colour": "red"}, "colour"),
        ({"kind": "call", "direction": "inbound", "occurred_at": "yesterday"}, "occurred_at"),
        ({"kind": "call", "direction": "inbound", "occurred_at": 1715870528}, "occurred_at"),
        ({"kind": "call", "direction": "inbound", "subject": "a\nb"}, "subject"),
        ({"kind": "call", "direction": "inbound", "subject": "s" * 1001}, "subject"),
        ({"kind": "call", "direction": "inbound", "body": "b" * 100_001}, "body"),
        ({"kind": "call", "direction": "inbound", "external_id": "e" * 501}, "external_id"),
        ({"kind": "call", "direction": "inbound", "participants": "ct_1"}, "participants"),
        (
            {"kind": "call", "direction": "inbound", "participants": [{"contact_id": "dl_1"}]},
            "participants.0.contact_id",
        ),
        (
            {
                "kind": "call",
                "direction": "inbound",
                "participants": [{"contact_id": UNKNOWN_CONTACT, "role": "boss"}],
            },
            "participants.0.role",
        ),
        (
            {
                "kind": "call",
                "direction": "inbound",
                "participants": [{"contact_id": UNKNOWN_CONTACT}] * 201,
            },
            "participants",
        ),
        ({"kind": "call", "direction": "inbound", "attributes": [1]}, "attributes"),
        ({"kind": ["call"], "direction": "inbound"}, "kind"),
    ],
)
def test_create_rejects_hostile_arguments(
    call: Caller, engine: Engine, account: NewAccount, args: dict[str, Any], param: str
) -> None:
    e = err(call("interaction.create", args), "invalid_argument")
    assert e["param"] == param
    assert count(engine.store, interactions, account.account_id) == 0


@pytest.mark.parametrize(
    ("op", "args", "param"),
    [
        ("interaction.list", {"limit": 0}, "limit"),
        ("interaction.list", {"limit": 101}, "limit"),
        ("interaction.list", {"kind": "fax"}, "kind"),
        ("interaction.list", {"contact_id": "'; DROP TABLE interactions; --"}, "contact_id"),
        ("interaction.list", {"since": "2026-13-45"}, "since"),
        ("interaction.list", {"owner": "me"}, "owner"),
        ("interaction.delete", {}, "id"),
        ("interaction.delete", {"id": "ct_01HG7Z4X9Q8M2N7P3R5T6V8W"}, "id"),
        ("interaction.delete", {"id": 42}, "id"),
    ],
)
def test_list_and_delete_reject_hostile_arguments(
    call: Caller, op: str, args: dict[str, Any], param: str
) -> None:
    assert err(call(op, args), "invalid_argument")["param"] == param


def test_delete_unknown_is_not_found(call: Caller) -> None:
    e = err(call("interaction.delete", {"id": "ix_01HG7Z4X9Q8M2N7P3R5T6V8W"}), "not_found")
    assert e["param"] == "id"


def test_http_round_trip(http: Any) -> None:
    created = http.post("/v1/interaction.create", json={"kind": "message", "direction": "inbound"})
    assert created.status_code == 200, created.text
    listed_ = http.post("/v1/interaction.list", json={"kind": "message"})
    assert [i["id"] for i in listed_.json()["data"]] == [created.json()["id"]]
    missing = http.post("/v1/interaction.delete", json={"id": "ix_01HG7Z4X9Q8M2N7P3R5T6V8W"})
    assert missing.status_code == 404
    assert missing.json()["error"]["code"] == "not_found"
