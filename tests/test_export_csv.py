"""contact.export_csv on SQLite and PostgreSQL: stable identity columns, contact.list's filters, the
formula-injection guard, the row cap with its cursor, and the round trip through import_csv."""

from __future__ import annotations

import csv
import io
from typing import Any

import pytest

from bulk_helpers import all_contacts
from conftest import Caller, err, ok
from krabs.accounts import NewAccount, create_account
from krabs.bulk.csv_out import protect
from krabs.engine import Engine


def export(call: Caller, key: str | None = None, **args: Any) -> dict[str, Any]:
    return ok(call("contact.export_csv", args, key=key))


def table(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text, newline="")))


def new(call: Caller, *emails: str, key: str | None = None, **fields: Any) -> dict[str, Any]:
    idents = [{"kind": "email", "value": e} for e in emails]
    return ok(call("contact.create", {**fields, "identities": idents}, key=key))


def test_identities_get_stable_numbered_columns(call: Caller) -> None:
    a = new(call, "a1@x.dev", "a2@x.dev", "a3@x.dev", display_name="A")
    ok(call("identity.add", {"contact_id": a["id"], "kind": "phone", "value": "+14155552671"}))
    ok(
        call(
            "identity.add",
            {"contact_id": a["id"], "kind": "email", "value": "a0@x.dev", "primary": True},
        )
    )
    b = new(call, "b1@x.dev", display_name="B")
    result = export(call)
    assert result["object"] == "csv_export" and result["rows"] == 2 and result["has_more"] is False
    header = result["csv"].splitlines()[0].split(",")
    assert header == [
        "id",
        "display_name",
        "given_name",
        "family_name",
        "company",
        "title",
        "stage",
        "owner",
        "email",
        "email_2",
        "email_3",
        "email_4",
        "phone",
        "tags",
        "attributes",
        "created_at",
        "updated_at",
    ]
    rows = table(result["csv"])
    assert [r["id"] for r in rows] == [a["id"], b["id"]], "oldest first"
    assert [rows[0][f"email{s}"] for s in ("", "_2", "_3", "_4")] == [
        "a0@x.dev",
        "a1@x.dev",
        "a2@x.dev",
        "a3@x.dev",
    ]
    assert rows[0]["phone"] == "'+14155552671"
    assert (rows[1]["email"], rows[1]["email_2"], rows[1]["phone"]) == ("b1@x.dev", "", "")
    assert result["csv"].endswith("\r\n")


def test_filters_are_those_of_contact_list(call: Caller) -> None:
    lead = new(call, "lead@x.dev", display_name="Lead Person", stage="lead")
    cust = new(call, "cust@x.dev", display_name="Customer Person", stage="customer")
    ok(call("tag.create", {"name": "VIP"}))
    ok(call("tag.attach", {"tag": "VIP", "target_type": "contact", "target_id": cust["id"]}))
    deleted = new(call, "gone@x.dev", stage="lead")
    ok(call("contact.delete", {"id": deleted["id"]}))

    def ids(**args: Any) -> list[str]:
        return [r["id"] for r in table(export(call, **args)["csv"])]

    assert ids() == [lead["id"], cust["id"]]
    assert ids(stage="lead") == [lead["id"]]
    assert ids(q="CUST@x") == [cust["id"]]
    assert ids(tag="vip") == [cust["id"]]
    assert ids(updated_since="2000-01-01") == [lead["id"], cust["id"]]
    assert ids(updated_since="2999-01-01") == []
    assert table(export(call, tag="vip")["csv"])[0]["tags"] == "VIP"
    err(call("contact.export_csv", {"tag": "no such tag"}), "not_found")


def test_other_accounts_are_never_exported(call: Caller, engine: Engine) -> None:
    mine = new(call, "mine@x.dev")
    other = create_account(engine.store, "other")
    new(call, "theirs@x.dev", key=other.secret)
    assert [r["id"] for r in table(export(call)["csv"])] == [mine["id"]]


def test_formula_cells_are_neutralized(call: Caller) -> None:
    c = new(
        call,
        "f@x.dev",
        display_name='=HYPERLINK("http://evil")',
        company="+cmd|' /C calc'!A0",
        title="-2+3",
        owner="@SUM(1)",
        given_name="Plain",
        attributes={"formula": "=1+1"},
    )
    [row] = table(export(call)["csv"])
    assert row["id"] == c["id"]
    assert row["display_name"] == '\'=HYPERLINK("http://evil")'
    assert row["company"] == "'+cmd|' /C calc'!A0"
    assert row["title"] == "'-2+3" and row["owner"] == "'@SUM(1)" and row["given_name"] == "Plain"
    assert row["attributes"] == '{"formula": "=1+1"}'


@pytest.mark.parametrize(
    ("cell", "out"),
    [
        ("=1", "'=1"),
        ("+1", "'+1"),
        ("-1", "'-1"),
        ("@a", "'@a"),
        ("\tx", "'\tx"),
        ("\rx", "'\rx"),
        ("a=1", "a=1"),
        ("", ""),
    ],
)
def test_protect(cell: str, out: str) -> None:
    assert protect(cell) == out


def test_row_cap_pages_with_a_cursor(call: Caller) -> None:
    made = [new(call, f"p{n}@x.dev")["id"] for n in range(5)]
    first = export(call, limit=2)
    assert (first["rows"], first["has_more"]) == (2, True)
    assert first["next_cursor"] == made[1]
    second = export(call, limit=2, starting_after=first["next_cursor"])
    third = export(call, limit=2, starting_after=second["next_cursor"])
    assert (third["rows"], third["has_more"], third["next_cursor"]) == (1, False, None)
    got = [r["id"] for page in (first, second, third) for r in table(page["csv"])]
    assert got == made
    exact = export(call, limit=5)
    assert (exact["rows"], exact["has_more"]) == (5, False)


def test_an_empty_account_exports_a_header(call: Caller) -> None:
    result = export(call)
    assert result["rows"] == 0 and table(result["csv"]) == []
    assert result["csv"].startswith("id,display_name,")


def _comparable(c: dict[str, Any]) -> dict[str, Any]:
    fields = ("display_name", "given_name", "family_name", "company", "title", "stage", "owner")
    return {
        **{f: c[f] for f in fields},
        "attributes": c["attributes"],
        "tags": sorted(t["name"] for t in c["tags"]),
        "identities": sorted(
            (i["kind"], i["value"], i["normalized"], i["primary"]) for i in c["identities"]
        ),
    }


def test_round_trip_through_import_reproduces_the_contacts(
    call: Caller, engine: Engine, account: NewAccount
) -> None:
    ok(
        call(
            "contact.create",
            {
                "display_name": '=Countess, of "Lovelace"',
                "given_name": "Ada",
                "family_name": "Lovelace",
                "company": "Analytical Engines; Ltd",
                "title": "-Programmer",
                "stage": "customer",
                "owner": "agent:sales",
                "attributes": {"tier": 1, "nested": {"list": [1, "two", None]}, "notes": "a\nb"},
                "identities": [
                    {"kind": "email", "value": "ada@lovelace.dev"},
                    {"kind": "email", "value": "Ada@Work.example"},
                    {"kind": "phone", "value": "+1 415 555 2671"},
                    {"kind": "linkedin", "value": "https://www.linkedin.com/in/ada-lovelace"},
                    {"kind": "x", "value": "@ada"},
                    {"kind": "github", "value": "ada-l"},
                    {"kind": "domain", "value": "lovelace.dev"},
                    {"kind": "url", "value": "https://lovelace.dev/about"},
                    {"kind": "other", "value": "badge 42"},
                ],
            },
        )
    )
    ok(
        call(
            "contact.create",
            {"given_name": "Bob", "identities": [{"kind": "phone", "value": "+442071838750"}]},
        )
    )
    comma = ok(call("contact.create", {"company": "Solo"}))
    ok(call("tag.create", {"name": "vip, gold"}))
    ok(call("tag.attach", {"tag": "vip, gold", "target_type": "contact", "target_id": comma["id"]}))
    ada = ok(
        call(
            "contact.find_by_identity", {"identity": {"kind": "email", "value": "ada@lovelace.dev"}}
        )
    )
    for name in ("math", "poetry"):
        ok(call("tag.create", {"name": name}))
        ok(call("tag.attach", {"tag": name, "target_type": "contact", "target_id": ada["id"]}))
    exported = export(call)
    assert exported["rows"] == 3

    empty = create_account(engine.store, "empty")
    result = ok(call("contact.import_csv", {"csv": exported["csv"]}, key=empty.secret))
    assert (result["created"], result["failed"], result["report"]) == (3, 0, [])
    source = [_comparable(c) for c in all_contacts(call)]
    copied = [_comparable(c) for c in all_contacts(call, key=empty.secret)]
    assert copied == source
    again = export(call, key=empty.secret)
    strip = [
        {k: v for k, v in r.items() if k not in ("id", "created_at", "updated_at")}
        for r in table(again["csv"])
    ]
    assert strip == [
        {k: v for k, v in r.items() if k not in ("id", "created_at", "updated_at")}
        for r in table(exported["csv"])
    ]


@pytest.mark.parametrize(
    "args",
    [
        {"limit": 0},
        {"limit": 100_001},
        {"limit": "10"},
        {"stage": "sold"},
        {"updated_since": "yesterday"},
        {"q": ""},
        {"q": "x" * 201},
        {"format": "xlsx"},
        {"starting_after": 5},
    ],
)
def test_bad_arguments_are_typed_errors(call: Caller, args: dict[str, Any]) -> None:
    e = err(call("contact.export_csv", args), "invalid_argument")
    assert e["param"] == next(iter(args))
