"""contact.ingest_vcard on SQLite and PostgreSQL: vCard 3.0 and 4.0 fields, several cards, upsert by
identity (a second ingestion changes nothing), per-card failures, the identity cap, undo, and
hostile input."""

from __future__ import annotations

import random
from typing import Any

import pytest

from bulk_helpers import account_data, all_contacts, by_email, primary, values
from conftest import Caller, err, ok, snapshot
from krabs.accounts import NewAccount
from krabs.bulk.vcard_in import split_cards
from krabs.engine import Engine

ADA_30 = (
    "BEGIN:VCARD\r\n"
    "VERSION:3.0\r\n"
    "N:Lovelace;Ada;;;\r\n"
    "FN:Ada Lovelace\r\n"
    "ORG:Analytical Engines;R&D\r\n"
    "TITLE:Countess\r\n"
    "EMAIL;TYPE=INTERNET,WORK:ada@lovelace.dev\r\n"
    "EMAIL;TYPE=HOME:ADA@home.example\r\n"
    "TEL;TYPE=CELL:+1 415 555 2671\r\n"
    "URL:https://www.linkedin.com/in/ada-lovelace\r\n"
    "URL:https://lovelace.dev/about\r\n"
    "X-SOCIALPROFILE;TYPE=twitter:https://twitter.com/ada\r\n"
    "X-SOCIALPROFILE;TYPE=github:ada-l\r\n"
    "NOTE:Met at the salon\\, 1843\r\n"
    "CATEGORIES:vip,math\r\n"
    "PHOTO;ENCODING=b;TYPE=JPEG:!!!not base64\r\n"
    " continued photo data\r\n"
    "END:VCARD\r\n"
)
GRACE_40 = (
    "BEGIN:VCARD\n"
    "VERSION:4.0\n"
    "FN:Grace Hopper\n"
    "N:Hopper;Grace;;;\n"
    "EMAIL;TYPE=work:grace@navy.example\n"
    "TEL;VALUE=uri;TYPE=cell:tel:+1-202-555-0100\n"
    "ORG:Navy\n"
    "CATEGORIES:admiral\n"
    "END:VCARD\n"
)


def ingest(call: Caller, text: str) -> dict[str, Any]:
    return ok(call("contact.ingest_vcard", {"vcard": text}))


def codes(result: dict[str, Any]) -> list[tuple[int, str]]:
    return [(e["row"], e["code"]) for e in result["report"]]


def test_a_3_0_card_maps_every_property(call: Caller) -> None:
    result = ingest(call, ADA_30)
    assert (result["object"], result["cards"], result["created"], result["failed"]) == (
        "vcard_ingest",
        1,
        1,
        0,
    )
    assert result["report"] == [] and result["undo_token"].startswith("undo_")
    c = by_email(call, "ada@home.example")
    assert c["id"] == result["contact_ids"][0]
    assert (c["display_name"], c["given_name"], c["family_name"]) == (
        "Ada Lovelace",
        "Ada",
        "Lovelace",
    )
    assert (c["company"], c["title"]) == ("Analytical Engines", "Countess")
    assert values(c, "email") == ["ada@lovelace.dev", "ada@home.example"]
    assert primary(c, "email") == "ada@lovelace.dev"
    assert values(c, "phone") == ["+14155552671"]
    assert values(c, "linkedin") == ["linkedin.com/in/ada-lovelace"]
    assert values(c, "url") == ["https://lovelace.dev/about"]
    assert values(c, "x") == ["ada"] and values(c, "github") == ["ada-l"]
    assert c["attributes"] == {"notes": "Met at the salon, 1843"}
    assert sorted(t["name"] for t in c["tags"]) == ["math", "vip"]
    assert {i["source"] for i in c["identities"]} == {"vcard"}


def test_a_4_0_card_with_a_tel_uri(call: Caller) -> None:
    ingest(call, GRACE_40)
    c = by_email(call, "grace@navy.example")
    assert (c["given_name"], c["family_name"], c["company"]) == ("Grace", "Hopper", "Navy")
    assert values(c, "phone") == ["+12025550100"]
    assert [t["name"] for t in c["tags"]] == ["admiral"]


def test_ingesting_the_same_file_twice_changes_nothing(
    call: Caller, engine: Engine, account: NewAccount
) -> None:
    text = ADA_30 + "\r\n" + GRACE_40
    first = ingest(call, text)
    assert (first["cards"], first["created"]) == (2, 2)
    before = account_data(engine.store, account.account_id)
    second = ingest(call, text)
    assert (second["created"], second["updated"], second["unchanged"]) == (0, 0, 2)
    assert second["contact_ids"] == first["contact_ids"]
    assert account_data(engine.store, account.account_id) == before


def test_a_card_updates_only_empty_fields_of_its_contact(call: Caller) -> None:
    existing = ok(
        call(
            "contact.create",
            {
                "display_name": "The Countess",
                "identities": [{"kind": "phone", "value": "+14155552671"}],
            },
        )
    )
    result = ingest(call, ADA_30)
    assert (result["created"], result["updated"]) == (0, 1)
    c = ok(call("contact.get", {"id": existing["id"]}))
    assert (c["display_name"], c["company"]) == ("The Countess", "Analytical Engines")
    assert len(c["identities"]) == 7


def test_two_cards_for_one_person_become_one_contact(call: Caller) -> None:
    twin = "BEGIN:VCARD\nVERSION:3.0\nFN:A. L.\nEMAIL:ADA@lovelace.dev\nTITLE:Other\nEND:VCARD\n"
    result = ingest(call, ADA_30 + twin)
    assert (result["created"], result["merged"]) == (1, 1)
    assert len(set(result["contact_ids"])) == 1
    assert len(all_contacts(call)) == 1


def test_malformed_cards_are_reported_and_the_rest_imported(call: Caller) -> None:
    broken = "BEGIN:VCARD\nVERSION:3.0\nFN:Broken\nTHIS IS NOT A PROPERTY\nEND:VCARD\n"
    bad_email = "BEGIN:VCARD\nVERSION:3.0\nFN:Bad Mail\nEMAIL:not-an-email\nEND:VCARD\n"
    empty = "BEGIN:VCARD\nVERSION:3.0\nEND:VCARD\n"
    unterminated = "BEGIN:VCARD\nVERSION:3.0\nFN:Never Ends\n"
    result = ingest(call, broken + ADA_30 + bad_email + empty + GRACE_40 + unterminated)
    assert (result["cards"], result["created"], result["failed"]) == (6, 2, 4)
    assert codes(result) == [
        (1, "malformed_card"),
        (3, "invalid_identity"),
        (4, "empty_card"),
        (6, "malformed_card"),
    ]
    assert sorted(c["display_name"] for c in all_contacts(call)) == ["Ada Lovelace", "Grace Hopper"]


def test_a_card_with_ten_thousand_emails_is_refused_alone(call: Caller) -> None:
    many = "BEGIN:VCARD\nVERSION:3.0\nFN:Many\n"
    many += "".join(f"EMAIL:u{n}@x.dev\n" for n in range(10_000)) + "END:VCARD\n"
    result = ingest(call, many + GRACE_40)
    assert codes(result) == [(1, "too_many_identities")]
    assert "at most 50" in result["report"][0]["message"]
    assert (result["created"], result["failed"]) == (1, 1)
    assert [c["display_name"] for c in all_contacts(call)] == ["Grace Hopper"]


def test_undo_reverses_the_ingestion(call: Caller, engine: Engine, account: NewAccount) -> None:
    existing = ok(
        call("contact.create", {"identities": [{"kind": "email", "value": "grace@navy.example"}]})
    )
    before = account_data(engine.store, account.account_id)
    result = ingest(call, ADA_30 + GRACE_40)
    ok(call("action.undo", {"undo_token": result["undo_token"]}))
    assert account_data(engine.store, account.account_id) == before
    assert ok(call("contact.get", {"id": existing["id"]}))["company"] is None


def test_dry_run_counts_match(call: Caller, engine: Engine, account: NewAccount) -> None:
    ok(call("action.list", {"limit": 1}))
    before = snapshot(engine.store, account.account_id)
    plan = ok(call("contact.ingest_vcard", {"vcard": ADA_30 + GRACE_40, "dry_run": True}))
    assert snapshot(engine.store, account.account_id) == before
    real = ingest(call, ADA_30 + GRACE_40)
    assert plan["result"]["created"] == real["created"] == 2


def test_split_cards_drops_binary_properties() -> None:
    [(n, text)] = list(split_cards(ADA_30.splitlines(keepends=True)))
    assert n == 1 and text is not None
    assert "PHOTO" not in text and "continued photo" not in text and "CATEGORIES" in text


def _garbage(seed: int) -> str:
    rng = random.Random(seed)
    printable = [*range(0x20, 0x7F), *range(0xA0, 0x2FF)]
    return "".join(chr(rng.choice(printable)) for _ in range(4000))


@pytest.mark.parametrize(
    ("args", "param"),
    [
        ({"vcard": ""}, "vcard"),
        ({"vcard": "   "}, "vcard"),
        ({"vcard": _garbage(1)}, "vcard"),
        ({"vcard": "BEGIN:VCARD\x00\nEND:VCARD"}, "vcard"),
        ({"vcard": 7}, "vcard"),
        ({"vcard": ["BEGIN:VCARD"]}, "vcard"),
        ({}, "vcard"),
        ({"vcard": GRACE_40, "on_match": "skip"}, "on_match"),
    ],
    ids=["empty", "blank", "garbage", "nul", "int", "list", "missing", "unknown-arg"],
)
def test_hostile_input_fails_typed_and_writes_nothing(
    call: Caller, engine: Engine, account: NewAccount, args: dict[str, Any], param: str
) -> None:
    ok(call("action.list", {"limit": 1}))
    before = snapshot(engine.store, account.account_id)
    e = err(call("contact.ingest_vcard", args), "invalid_argument")
    assert e["param"] == param
    assert snapshot(engine.store, account.account_id) == before


def test_garbage_between_begin_and_end_is_a_card_failure_not_a_crash(call: Caller) -> None:
    text = "BEGIN:VCARD\n" + _garbage(2).replace("\n", " ") + "\nEND:VCARD\n" + GRACE_40
    result = ingest(call, text)
    assert (result["failed"], result["created"]) == (1, 1)
    assert codes(result)[0][0] == 1
