"""Contacts and identities through the real engine, on SQLite and PostgreSQL: create, get, list,
update, delete, find, upsert; identity add/list/remove; account isolation; the live-identity
unique index; and one audit action per successful write."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
import sqlalchemy as sa

from conftest import Caller, err, ok
from krabs.accounts import NewAccount, create_account
from krabs.contract.ids import new_id
from krabs.engine import Engine
from krabs.engine.uow import utcnow
from krabs.normalize import norm_hash
from krabs.store.db import Store
from krabs.store.tables import accounts, contacts, identities

ADA = "ada@lovelace.dev"
PHONE = "+1 415 555 2671"
PHONE_E164 = "+14155552671"
UNKNOWN_CONTACT = "ct_01HG7Z4X9Q8M2N7P3R5T6V8W"
UNKNOWN_IDENTITY = "id_01HG7Z4X9Q8M2N7P3R5T6V8W"


# -- helpers ---------------------------------------------------------------------------------------


def email(value: str, **extra: Any) -> dict[str, Any]:
    return {"kind": "email", "value": value, **extra}


def phone(value: str, **extra: Any) -> dict[str, Any]:
    return {"kind": "phone", "value": value, **extra}


def create(call: Caller, **args: Any) -> dict[str, Any]:
    return ok(call("contact.create", args))


def identity_of(contact: dict[str, Any], kind: str, normalized: str) -> dict[str, Any]:
    [found] = [
        i for i in contact["identities"] if i["kind"] == kind and i["normalized"] == normalized
    ]
    return found


def listed_ids(call: Caller, key: str | None = None, **args: Any) -> list[str]:
    return [c["id"] for c in ok(call("contact.list", args, key=key))["data"]]


def ops_on(call: Caller, target: str, key: str | None = None) -> list[str]:
    """The ops of the actions that touched ``target``, oldest first."""
    page = ok(call("action.list", {"target": target, "limit": 100}, key=key))
    assert not page["has_more"]
    return [a["op"] for a in reversed(page["data"])]


def all_ops(call: Caller) -> list[str]:
    """Every action of the (fresh, per-test) account, oldest first."""
    page = ok(call("action.list", {"limit": 100}))
    assert not page["has_more"]
    return [a["op"] for a in reversed(page["data"])]


def set_default_region(store: Store, account_id: str, region: str | None) -> None:
    with store.transaction() as conn:
        conn.execute(
            accounts.update().where(accounts.c.id == account_id).values(default_region=region)
        )


@pytest.fixture
def other(engine: Engine) -> NewAccount:
    return create_account(engine.store, "other")


# -- contact.create --------------------------------------------------------------------------------


def test_create_round_trips_every_field(call: Caller) -> None:
    fields: dict[str, Any] = {
        "display_name": "Countess of Lovelace",
        "given_name": "Ada",
        "family_name": "Lovelace",
        "company": "Analytical Engines",
        "title": "Programmer",
        "stage": "prospect",
        "owner": "agent:sales",
        "attributes": {"tier": 1, "tags": ["math", "poetry"], "nested": {"deep": [True, None]}},
    }
    created = create(call, **fields, identities=[email(ADA, source="import")])
    got = ok(call("contact.get", {"id": created["id"]}))
    assert got == created
    assert got["object"] == "contact"
    assert got["id"].startswith("ct_")
    assert got["merged_into"] is None
    assert {k: got[k] for k in fields} == fields
    assert got["created_at"] == got["updated_at"]
    [ident] = got["identities"]
    assert ident["object"] == "identity"
    assert ident["id"].startswith("id_")
    assert ident["contact_id"] == got["id"]
    assert (ident["kind"], ident["value"], ident["normalized"]) == ("email", ADA, ADA)
    assert ident["primary"] is True
    assert ident["source"] == "import"
    assert ops_on(call, got["id"]) == ["contact.create"]


def test_create_with_no_fields_at_all(call: Caller) -> None:
    created = create(call)
    assert created["display_name"] is None
    assert created["attributes"] == {}
    assert created["identities"] == []
    assert ok(call("contact.get", {"id": created["id"]})) == created


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        ({"given_name": "Ada", "family_name": "Lovelace"}, "Ada Lovelace"),
        ({"given_name": "Ada"}, "Ada"),
        ({"family_name": "Lovelace"}, "Lovelace"),
        ({"given_name": "Ada", "company": "Analytical Engines"}, "Ada"),
        ({"company": "Analytical Engines", "identities": [email(ADA)]}, "Analytical Engines"),
        ({"identities": [email(ADA), phone(PHONE)]}, ADA),
        ({"identities": [phone(PHONE_E164), email(ADA)]}, PHONE_E164),
        ({"display_name": "The Countess", "given_name": "Ada", "company": "AE"}, "The Countess"),
        ({"title": "Programmer"}, None),
    ],
    ids=[
        "given+family",
        "given",
        "family",
        "given-beats-company",
        "company-beats-identity",
        "first-identity",
        "first-identity-phone",
        "explicit",
        "nothing",
    ],
)
def test_create_display_name_default(
    call: Caller, args: dict[str, Any], expected: str | None
) -> None:
    created = create(call, **args)
    assert created["display_name"] == expected
    assert ok(call("contact.get", {"id": created["id"]}))["display_name"] == expected


@pytest.mark.parametrize(
    ("kind", "value", "normalized"),
    [
        ("email", "ADA@Lovelace.DEV", ADA),
        ("email", "  Ada@LOVELACE.dev  ", ADA),
        ("phone", PHONE, PHONE_E164),
        ("phone", "+1 (415) 555-2671", PHONE_E164),
        ("phone", "tel:+1-415-555-2671", PHONE_E164),
        ("phone", "0014155552671", PHONE_E164),
        ("github", "https://github.com/Ada-Lovelace", "ada-lovelace"),
        ("domain", "https://www.Lovelace.dev/", "lovelace.dev"),
        ("x", "@Ada_Lovelace", "ada_lovelace"),
    ],
)
def test_create_normalizes_identities(call: Caller, kind: str, value: str, normalized: str) -> None:
    created = create(call, identities=[{"kind": kind, "value": value}])
    [ident] = created["identities"]
    assert ident["kind"] == kind
    assert ident["value"] == value.strip()  # the raw value is kept (stripped), not the normal form
    assert ident["normalized"] == normalized
    assert ok(call("contact.get", {"id": created["id"]}))["identities"] == [ident]


@pytest.mark.parametrize(
    ("identity", "param"),
    [
        (phone("(415) 555-2671"), "identities.1.value"),
        (phone("12"), "identities.1.value"),
        (email("not-an-email"), "identities.1.value"),
        (email(""), "identities.1.value"),
        ({"kind": "fax", "value": "x"}, "identities.1.kind"),
    ],
    ids=["national-phone-no-region", "short-phone", "bad-email", "empty", "unknown-kind"],
)
def test_create_rejects_invalid_identities(
    call: Caller, identity: dict[str, Any], param: str
) -> None:
    error = err(call("contact.create", {"identities": [email(ADA), identity]}), "invalid_argument")
    assert error["param"] == param
    assert ok(call("contact.list"))["data"] == []
    assert all_ops(call) == []


@pytest.mark.parametrize(
    ("region", "spelling"),
    [("US", "(415) 555-2671"), ("us", "415.555.2671"), ("US", PHONE), ("GB", PHONE)],
)
def test_national_phone_uses_the_account_default_region(
    call: Caller, store: Store, account: NewAccount, region: str, spelling: str
) -> None:
    set_default_region(store, account.account_id, region)
    created = create(call, identities=[phone(spelling)])
    assert created["identities"][0]["normalized"] == PHONE_E164
    assert created["identities"][0]["value"] == spelling


def test_default_region_applies_to_every_phone_op(
    call: Caller, store: Store, account: NewAccount
) -> None:
    set_default_region(store, account.account_id, "US")
    created = create(call, identities=[phone("(415) 555-2671")])
    found = ok(call("contact.find_by_identity", {"identity": phone("415-555-2671")}))
    assert found["id"] == created["id"]
    up = ok(call("contact.upsert", {"identity": phone("415 555 2671"), "stage": "lead"}))
    assert up == {"id": created["id"], "created": False}
    other_contact = create(call)
    error = err(
        call("identity.add", {"contact_id": other_contact["id"], **phone("(415) 555 2671")}),
        "conflict",
    )
    assert error["contact_id"] == created["id"]
    added = ok(call("identity.add", {"contact_id": other_contact["id"], **phone("650-253-0000")}))
    assert added["normalized"] == "+16502530000"


def test_national_phone_region_read_per_call(
    call: Caller, store: Store, account: NewAccount
) -> None:
    err(call("contact.create", {"identities": [phone("(415) 555-2671")]}), "invalid_argument")
    set_default_region(store, account.account_id, "US")
    ok(call("contact.create", {"identities": [phone("(415) 555-2671")]}))
    set_default_region(store, account.account_id, None)
    error = err(
        call("contact.create", {"identities": [phone("(650) 253-0000")]}), "invalid_argument"
    )
    assert error["param"] == "identities.0.value"


@pytest.mark.parametrize(
    "spellings",
    [
        [email(ADA), email("ADA@Lovelace.DEV")],
        [email(ADA), email(ADA), email(" Ada@lovelace.dev ")],
        [phone(PHONE), phone("+1 (415) 555-2671"), phone(PHONE_E164)],
    ],
    ids=["email-case", "email-thrice", "phone-formats"],
)
def test_create_same_identity_twice_is_stored_once(
    call: Caller, store: Store, spellings: list[dict[str, Any]]
) -> None:
    created = create(call, identities=spellings)
    [ident] = created["identities"]
    assert ident["value"] == spellings[0]["value"].strip()  # the first spelling wins
    assert ident["primary"] is True
    with store.connect(write=False) as conn:
        rows = conn.execute(
            sa.select(identities).where(identities.c.contact_id == created["id"])
        ).all()
    assert len(rows) == 1


def primaries(contact: dict[str, Any]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for i in contact["identities"]:
        if i["primary"]:
            out.setdefault(i["kind"], []).append(i["normalized"])
    return out


@pytest.mark.parametrize(
    ("idents", "expected"),
    [
        (
            [email("a@x.dev"), email("b@x.dev"), phone(PHONE)],
            {"email": ["a@x.dev"], "phone": [PHONE_E164]},
        ),
        (
            [email("a@x.dev"), email("b@x.dev", primary=True), email("c@x.dev")],
            {"email": ["b@x.dev"]},
        ),
        (
            [phone(PHONE), email("a@x.dev"), email("b@x.dev"), email("c@x.dev", primary=True)],
            {"email": ["c@x.dev"], "phone": [PHONE_E164]},
        ),
        (
            [email("a@x.dev", primary=True), email("b@x.dev", primary=True)],
            {"email": ["b@x.dev"]},
        ),
        ([email("a@x.dev", primary=False), email("b@x.dev")], {"email": ["b@x.dev"]}),
    ],
    ids=["first-of-each-kind", "later-primary", "last-primary", "two-primaries", "first-declines"],
)
def test_create_primary_per_kind(
    call: Caller, idents: list[dict[str, Any]], expected: dict[str, list[str]]
) -> None:
    created = create(call, identities=idents)
    assert len(created["identities"]) == len(idents)
    assert primaries(created) == expected
    assert primaries(ok(call("contact.get", {"id": created["id"]}))) == expected


@pytest.mark.parametrize(
    ("idents", "param"),
    [
        ([email("ADA@lovelace.dev")], "identities.0"),
        ([email("new@x.dev"), email("Ada@Lovelace.dev")], "identities.1"),
        # the param must point into the request as sent, not into the de-duplicated list
        ([email("new@x.dev"), email("NEW@x.dev"), email(ADA)], "identities.2"),
    ],
    ids=["only", "second", "after-a-repeat"],
)
def test_create_conflict_names_the_owner(
    call: Caller, idents: list[dict[str, Any]], param: str
) -> None:
    owner = create(call, identities=[email(ADA)])
    error = err(call("contact.create", {"identities": idents}), "conflict")
    assert owner["id"] in error["message"]
    assert error["contact_id"] == owner["id"]
    assert error["param"] is not None and error["param"].startswith(param)
    # nothing of the refused request was written, and no action recorded
    assert listed_ids(call) == [owner["id"]]
    err(call("contact.find_by_identity", {"identity": email("new@x.dev")}), "not_found")
    assert all_ops(call) == ["contact.create"]


def test_identities_of_a_deleted_contact_are_free_again(call: Caller) -> None:
    first = create(call, identities=[email(ADA), phone(PHONE)])
    ok(call("contact.delete", {"id": first["id"]}))
    second = create(call, identities=[email("Ada@Lovelace.dev"), phone("+1 (415) 555-2671")])
    assert second["id"] != first["id"]
    assert len(second["identities"]) == 2
    assert ok(call("contact.find_by_identity", {"identity": email(ADA)}))["id"] == second["id"]
    assert ok(call("contact.find_by_identity", {"identity": phone(PHONE)}))["id"] == second["id"]


# -- the database's own uniqueness rule ------------------------------------------------------------


def identity_row(account_id: str, contact_id: str, **extra: Any) -> dict[str, Any]:
    """A raw ``identities`` row, as the handlers would write it (columns the schema lacks are left
    out, so this follows schema changes such as a hash column backing the unique index)."""
    row: dict[str, Any] = {
        "id": new_id("identity"),
        "account_id": account_id,
        "contact_id": contact_id,
        "kind": "email",
        "value": ADA,
        "normalized": ADA,
        "is_primary": False,
        "source": None,
        "created_at": utcnow(),
        "deleted_at": None,
        **extra,
    }
    if "norm_hash" in identities.c:
        row["norm_hash"] = norm_hash(account_id, row["kind"], row["normalized"])
    return {k: v for k, v in row.items() if k in identities.c}


def contact_row(account_id: str) -> dict[str, Any]:
    now = utcnow()
    return {
        "id": new_id("contact"),
        "account_id": account_id,
        "attributes": {},
        "created_at": now,
        "updated_at": now,
    }


def test_database_refuses_a_second_live_identity(
    call: Caller, store: Store, account: NewAccount
) -> None:
    owner = create(call, identities=[email(ADA)])
    intruder = create(call)
    with pytest.raises(sa.exc.IntegrityError), store.transaction() as conn:
        conn.execute(identities.insert().values(**identity_row(account.account_id, intruder["id"])))
    # also for the owning contact itself: one live row per (account, kind, normalized)
    with pytest.raises(sa.exc.IntegrityError), store.transaction() as conn:
        conn.execute(identities.insert().values(**identity_row(account.account_id, owner["id"])))
    assert create(call) is not None  # the store is still usable after the failed transactions


def test_database_allows_soft_deleted_duplicates_and_other_accounts(
    call: Caller, store: Store, account: NewAccount, other: NewAccount
) -> None:
    owner = create(call, identities=[email(ADA)])
    intruder = create(call)
    foreign = contact_row(other.account_id)
    with store.transaction() as conn:
        for _ in range(2):
            conn.execute(
                identities.insert().values(
                    **identity_row(account.account_id, intruder["id"], deleted_at=utcnow())
                )
            )
        conn.execute(contacts.insert().values(**foreign))
        conn.execute(identities.insert().values(**identity_row(other.account_id, foreign["id"])))
        conn.execute(
            identities.insert().values(
                **identity_row(account.account_id, owner["id"], kind="other")
            )
        )
    found = ok(call("contact.find_by_identity", {"identity": email(ADA)}))
    assert found["id"] == owner["id"]
    assert ok(call("contact.get", {"id": intruder["id"]}))["identities"] == []


# -- contact.get -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("contact_id", "code"),
    [
        (UNKNOWN_CONTACT, "not_found"),
        ("ct_nope", "not_found"),
        ("nope", "invalid_argument"),
        ("id_01HG7Z4X9Q8M2N7P3R5T6V8W", "invalid_argument"),
        ("ct_", "invalid_argument"),
        ("ct_01HG7Z4X9Q8M2N7P3R5T6V8W'--", "invalid_argument"),
        ("", "invalid_argument"),
    ],
)
def test_get_unknown_or_malformed(call: Caller, contact_id: str, code: str) -> None:
    assert err(call("contact.get", {"id": contact_id}), code)["param"] == "id"


def test_get_without_id(call: Caller) -> None:
    assert err(call("contact.get", {}), "invalid_argument")["param"] == "id"


def test_get_deleted_contact_is_not_found(call: Caller) -> None:
    created = create(call, given_name="Ada")
    ok(call("contact.delete", {"id": created["id"]}))
    error = err(call("contact.get", {"id": created["id"]}), "not_found")
    assert error["param"] == "id"
    assert created["id"] in error["message"]


# -- account isolation -----------------------------------------------------------------------------


def test_accounts_are_isolated(call: Caller, other: NewAccount) -> None:
    mine = create(call, given_name="Ada", stage="lead", identities=[email(ADA)])
    ident = mine["identities"][0]
    attempts: list[tuple[str, dict[str, Any]]] = [
        ("contact.get", {"id": mine["id"]}),
        ("contact.update", {"id": mine["id"], "stage": "churned"}),
        ("contact.delete", {"id": mine["id"]}),
        ("contact.find_by_identity", {"identity": email(ADA)}),
        ("identity.add", {"contact_id": mine["id"], **email("x@y.dev")}),
        ("identity.list", {"contact_id": mine["id"]}),
        ("identity.remove", {"id": ident["id"]}),
    ]
    for op, args in attempts:
        err(call(op, args, key=other.secret), "not_found")
    for args in ({}, {"q": "ada"}, {"stage": "lead"}):
        assert listed_ids(call, key=other.secret, **args) == []
    assert ops_on(call, mine["id"], key=other.secret) == []
    # the first account's contact is untouched
    assert ok(call("contact.get", {"id": mine["id"]})) == mine
    assert ops_on(call, mine["id"]) == ["contact.create"]


def test_identity_uniqueness_is_per_account(call: Caller, other: NewAccount) -> None:
    mine = create(call, identities=[email(ADA), phone(PHONE)])
    theirs = ok(
        call(
            "contact.create",
            {"identities": [email("ADA@lovelace.dev"), phone(PHONE_E164)]},
            key=other.secret,
        )
    )
    assert theirs["id"] != mine["id"]
    up = ok(call("contact.upsert", {"identity": email(ADA), "stage": "lead"}, key=other.secret))
    assert up == {"id": theirs["id"], "created": False}
    found = ok(call("contact.find_by_identity", {"identity": email(ADA)}, key=other.secret))
    assert found["id"] == theirs["id"]
    assert ok(call("contact.find_by_identity", {"identity": email(ADA)}))["id"] == mine["id"]
    assert listed_ids(call) == [mine["id"]]
    assert listed_ids(call, key=other.secret) == [theirs["id"]]


# -- contact.list ----------------------------------------------------------------------------------


def test_list_is_newest_first(call: Caller) -> None:
    ids = [create(call, given_name=f"n{i}")["id"] for i in range(5)]
    page = ok(call("contact.list"))
    assert page["object"] == "list"
    assert [c["id"] for c in page["data"]] == ids[::-1]
    assert page["has_more"] is False
    assert page["next_cursor"] is None
    assert page["data"][0]["given_name"] == "n4"


def test_list_includes_identities(call: Caller) -> None:
    created = create(call, identities=[email(ADA), phone(PHONE)])
    [listed] = ok(call("contact.list"))["data"]
    assert listed == created


def test_list_walks_45_contacts_in_pages(call: Caller) -> None:
    ids = [create(call, given_name=f"p{i:02d}")["id"] for i in range(45)]
    seen: list[str] = []
    sizes: list[int] = []
    cursor: str | None = None
    for _ in range(10):
        args: dict[str, Any] = {"limit": 20}
        if cursor is not None:
            args["starting_after"] = cursor
        page = ok(call("contact.list", args))
        sizes.append(len(page["data"]))
        seen.extend(c["id"] for c in page["data"])
        if not page["has_more"]:
            assert page["next_cursor"] is None
            break
        assert page["next_cursor"] == page["data"][-1]["id"]
        cursor = page["next_cursor"]
    assert sizes == [20, 20, 5]
    assert seen == ids[::-1]  # newest first, no repeat, no gap
    # exactly a page's worth left: has_more is false, not a trailing empty page
    page = ok(call("contact.list", {"limit": 5, "starting_after": ids[5]}))
    assert [c["id"] for c in page["data"]] == ids[4::-1]
    assert page["has_more"] is False


@pytest.mark.parametrize(
    ("limit", "good"), [(0, False), (-1, False), (101, False), (1, True), (100, True)]
)
def test_list_limit_bounds(call: Caller, limit: int, good: bool) -> None:
    ids = [create(call)["id"] for _ in range(2)]
    outcome = call("contact.list", {"limit": limit})
    if not good:
        assert err(outcome, "invalid_argument")["param"] == "limit"
        return
    page = ok(outcome)
    assert [c["id"] for c in page["data"]] == ids[::-1][:limit]
    assert page["has_more"] is (limit < 2)


def test_list_filters_by_stage(call: Caller) -> None:
    lead = create(call, stage="lead")["id"]
    customer = create(call, stage="customer")["id"]
    create(call)
    lead2 = create(call, stage="lead")["id"]
    assert listed_ids(call, stage="lead") == [lead2, lead]
    assert listed_ids(call, stage="customer") == [customer]
    assert listed_ids(call, stage="churned") == []
    assert err(call("contact.list", {"stage": "vip"}), "invalid_argument")["param"] == "stage"


def iso(ts: str, tz: dt.tzinfo) -> str:
    """A stored timestamp re-spelled in another zone (same instant)."""
    return dt.datetime.fromisoformat(ts.replace("Z", "+00:00")).astimezone(tz).isoformat()


def test_list_filters_by_updated_since(call: Caller) -> None:
    a = create(call, given_name="a")
    b = create(call, given_name="b")
    both = [b["id"], a["id"]]
    today = dt.date.fromisoformat(a["updated_at"][:10])
    cases: list[tuple[str, list[str]]] = [
        (b["updated_at"], [b["id"]]),
        (a["updated_at"], both),
        (iso(b["updated_at"], dt.timezone(dt.timedelta(hours=2))), [b["id"]]),
        (iso(b["updated_at"], dt.timezone(dt.timedelta(hours=-7))), [b["id"]]),
        (b["updated_at"].removesuffix("Z"), [b["id"]]),  # no offset: UTC
        (today.isoformat(), both),
        ((today - dt.timedelta(days=1)).isoformat(), both),
        ((today + dt.timedelta(days=2)).isoformat(), []),
        (f"{today + dt.timedelta(days=2)}T00:00Z", []),
    ]
    for since, expected in cases:
        assert listed_ids(call, updated_since=since) == expected, since
    # an update makes an older contact match: the filter is on updated_at, not created_at
    updated = ok(call("contact.update", {"id": a["id"], "stage": "lead"}))
    assert listed_ids(call, updated_since=updated["updated_at"]) == [a["id"]]
    for bad in ("yesterday", "2026-13-45x", "16/05/2026"):
        err(call("contact.list", {"updated_since": bad}), "invalid_argument")


@pytest.fixture
def searchable(call: Caller) -> dict[str, str]:
    made = {
        "ada": create(
            call,
            given_name="Ada",
            family_name="Lovelace",
            company="Analytical Engines",
            identities=[email(ADA)],
        ),
        "grace": create(
            call, display_name="Grace Hopper", identities=[email("gh@cobol.example"), phone(PHONE)]
        ),
        "konrad": create(call, display_name="Z3", given_name="Konrad", family_name="Zuse"),
        "percent": create(call, display_name="100% Pure", company="a_b corp"),
        "plain": create(call, display_name="1000 Pure", company="axb corp"),
        "gone": create(call, display_name="Ada Gone", identities=[email("gone@lovelace.dev")]),
    }
    ok(call("contact.delete", {"id": made["gone"]["id"]}))
    return {name: c["id"] for name, c in made.items()}


@pytest.mark.parametrize(
    ("q", "names"),
    [
        ("ada", {"ada"}),
        ("ADA LOVELACE", {"ada"}),  # display name
        ("lovelace", {"ada"}),
        ("ENGINES", {"ada"}),  # company
        ("konrad", {"konrad"}),  # given name only
        ("zUsE", {"konrad"}),  # family name only
        ("hopper", {"grace"}),
        ("COBOL.example", {"grace"}),  # identity value only
        ("5552671", {"grace"}),  # phone identity
        ("pure", {"percent", "plain"}),
        ("100%", {"percent"}),
        ("%", {"percent"}),
        ("a_b", {"percent"}),
        ("_", {"percent"}),
        ("0% P", {"percent"}),
        ("\\", set()),
        ("nobody", set()),
        ("gone", set()),  # deleted contacts never match
    ],
)
def test_list_q_search(call: Caller, searchable: dict[str, str], q: str, names: set[str]) -> None:
    expected = [
        i for n, i in sorted(searchable.items(), key=lambda kv: kv[1], reverse=True) if n in names
    ]
    assert listed_ids(call, q=q) == expected


@pytest.mark.parametrize("q", ["ÉMILE", "émile", "ØRSTED", "Ørsted"])
def test_list_q_is_case_insensitive_beyond_ascii(call: Caller, q: str) -> None:
    created = create(call, display_name="émile ørsted")
    create(call, display_name="emile orsted")
    assert listed_ids(call, q=q) == [created["id"]]


def test_list_q_combines_with_other_filters(call: Caller) -> None:
    lead = create(call, given_name="Ada", stage="lead")["id"]
    create(call, given_name="Ada", stage="customer")
    create(call, given_name="Bob", stage="lead")
    assert listed_ids(call, q="ada", stage="lead") == [lead]
    assert err(call("contact.list", {"q": ""}), "invalid_argument")["param"] == "q"


def test_list_skips_deleted_contacts(call: Caller) -> None:
    ids = [create(call)["id"] for _ in range(4)]
    ok(call("contact.delete", {"id": ids[2]}))
    assert listed_ids(call) == [ids[3], ids[1], ids[0]]
    page = ok(call("contact.list", {"limit": 1, "starting_after": ids[3]}))
    assert [c["id"] for c in page["data"]] == [ids[1]]
    assert page["has_more"] is True


# -- contact.update --------------------------------------------------------------------------------


FULL: dict[str, Any] = {
    "display_name": "Ada Lovelace",
    "given_name": "Ada",
    "family_name": "Lovelace",
    "company": "Analytical Engines",
    "title": "Programmer",
    "stage": "lead",
    "owner": "agent:sales",
    "attributes": {"tier": 1},
}


@pytest.mark.parametrize(
    "change",
    [
        {"stage": "customer"},
        {"given_name": "Augusta", "family_name": "King"},
        {"company": None},
        {"title": None, "owner": None, "stage": None},
        {"display_name": None},
        {"attributes": {"tier": 2, "vip": True}},
        {"attributes": None},
        {"attributes": {}},
    ],
)
def test_update_changes_only_sent_fields(call: Caller, change: dict[str, Any]) -> None:
    created = create(call, **FULL, identities=[email(ADA)])
    updated = ok(call("contact.update", {"id": created["id"], **change}))
    expected = {**FULL, **change}
    if "attributes" in change and change["attributes"] is None:
        expected["attributes"] = {}
    assert {k: updated[k] for k in FULL} == expected
    assert updated["identities"] == created["identities"]
    assert updated["created_at"] == created["created_at"]
    assert updated["updated_at"] > created["updated_at"]
    assert ok(call("contact.get", {"id": created["id"]})) == updated
    assert ops_on(call, created["id"]) == ["contact.create", "contact.update"]


def test_update_attributes_replace_not_merge(call: Caller) -> None:
    created = create(call, attributes={"a": 1, "b": {"c": 2}})
    updated = ok(call("contact.update", {"id": created["id"], "attributes": {"b": {"d": 3}}}))
    assert updated["attributes"] == {"b": {"d": 3}}


@pytest.mark.parametrize(
    "change",
    [
        {"stage": "lead"},
        {"given_name": "Ada", "company": "Analytical Engines"},
        {"attributes": {"tier": 1}},
        dict(FULL),
    ],
)
def test_update_with_same_values_is_a_no_op(call: Caller, change: dict[str, Any]) -> None:
    created = create(call, **FULL)
    updated = ok(call("contact.update", {"id": created["id"], **change}))
    assert updated == created
    assert ok(call("contact.get", {"id": created["id"]}))["updated_at"] == created["updated_at"]
    # the call still succeeded, so it is still one audit action
    assert all_ops(call) == ["contact.create", "contact.update"]


def test_update_clearing_already_empty_attributes_is_a_no_op(call: Caller) -> None:
    created = create(call, given_name="Ada")
    updated = ok(call("contact.update", {"id": created["id"], "attributes": None}))
    assert updated == created


@pytest.mark.parametrize(
    ("args", "code", "param"),
    [
        ({}, "invalid_argument", None),
        ({"nickname": "Ada"}, "invalid_argument", "nickname"),
        ({"stage": "vip"}, "invalid_argument", "stage"),
        ({"given_name": ""}, "invalid_argument", "given_name"),
        ({"given_name": "a\nb"}, "invalid_argument", "given_name"),
        ({"given_name": "x" * 201}, "invalid_argument", "given_name"),
        ({"attributes": [1, 2]}, "invalid_argument", "attributes"),
        ({"identities": [email("x@y.dev")]}, "invalid_argument", "identities"),
    ],
    ids=[
        "empty",
        "unknown-field",
        "bad-stage",
        "blank",
        "newline",
        "too-long",
        "attrs-list",
        "idents",
    ],
)
def test_update_rejects_bad_arguments(
    call: Caller, args: dict[str, Any], code: str, param: str | None
) -> None:
    created = create(call, **FULL)
    error = err(call("contact.update", {"id": created["id"], **args}), code)
    assert error["param"] == param
    assert ok(call("contact.get", {"id": created["id"]})) == created
    assert all_ops(call) == ["contact.create"]


def test_update_unknown_or_deleted_contact(call: Caller) -> None:
    error = err(call("contact.update", {"id": UNKNOWN_CONTACT, "stage": "lead"}), "not_found")
    assert error["param"] == "id"
    created = create(call)
    ok(call("contact.delete", {"id": created["id"]}))
    err(call("contact.update", {"id": created["id"], "stage": "lead"}), "not_found")
    assert ops_on(call, created["id"]) == ["contact.create", "contact.delete"]


def test_updated_at_moves_forward_on_each_change(call: Caller) -> None:
    created = create(call, stage="lead")
    stamps = [created["updated_at"]]
    for stage in ("prospect", "customer", "churned"):
        updated = ok(call("contact.update", {"id": created["id"], "stage": stage}))
        stamps.append(updated["updated_at"])
    assert stamps == sorted(stamps)
    assert len(set(stamps)) == len(stamps)


# -- contact.delete --------------------------------------------------------------------------------


def test_delete_hides_the_contact_everywhere(call: Caller) -> None:
    keep = create(call, given_name="Keep")
    created = create(call, given_name="Ada", identities=[email(ADA), phone(PHONE)])
    result = ok(call("contact.delete", {"id": created["id"]}))
    assert set(result) >= {"id", "deleted", "undo_token"}
    assert result["id"] == created["id"]
    assert result["deleted"] is True
    assert isinstance(result["undo_token"], str) and result["undo_token"].startswith("undo_")
    err(call("contact.get", {"id": created["id"]}), "not_found")
    assert listed_ids(call) == [keep["id"]]
    assert listed_ids(call, q="ada") == []
    for ident in (email(ADA), phone(PHONE)):
        err(call("contact.find_by_identity", {"identity": ident}), "not_found")
    err(call("identity.list", {"contact_id": created["id"]}), "not_found")
    err(call("identity.add", {"contact_id": created["id"], **email("x@y.dev")}), "not_found")
    error = err(call("contact.delete", {"id": created["id"]}), "not_found")
    assert error["param"] == "id"
    assert ops_on(call, created["id"]) == ["contact.create", "contact.delete"]
    assert ops_on(call, keep["id"]) == ["contact.create"]


def test_delete_unknown_or_malformed(call: Caller) -> None:
    err(call("contact.delete", {"id": UNKNOWN_CONTACT}), "not_found")
    err(call("contact.delete", {"id": "42"}), "invalid_argument")
    assert all_ops(call) == []


# -- contact.find_by_identity ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "identity",
    [
        email(ADA),
        email("ADA@Lovelace.DEV"),
        email("  Ada@lovelace.dev "),
        email("mailto:ada@lovelace.dev"),
        phone(PHONE),
        phone(PHONE_E164),
        phone("+1 (415) 555-2671"),
        phone("+1.415.555.2671"),
        phone("tel:+1-415-555-2671"),
        phone("0014155552671"),
        {"kind": "github", "value": "https://github.com/ADA-lovelace/"},
    ],
)
def test_find_by_any_spelling(call: Caller, identity: dict[str, Any]) -> None:
    create(call, given_name="Decoy", identities=[email("decoy@lovelace.dev")])
    created = create(
        call,
        given_name="Ada",
        identities=[email(ADA), phone(PHONE), {"kind": "github", "value": "ada-lovelace"}],
    )
    found = ok(call("contact.find_by_identity", {"identity": identity}))
    assert found == created


def test_find_does_not_match_other_kinds(call: Caller) -> None:
    create(call, identities=[{"kind": "other", "value": ADA}])
    err(call("contact.find_by_identity", {"identity": email(ADA)}), "not_found")


def test_find_unknown_identity(call: Caller) -> None:
    create(call, identities=[email(ADA)])
    error = err(call("contact.find_by_identity", {"identity": email("BOB@x.dev")}), "not_found")
    assert error["param"] == "identity.value"
    assert "bob@x.dev" in error["message"]


@pytest.mark.parametrize(
    ("identity", "param"),
    [
        (email("not-an-email"), "identity.value"),
        (phone("12"), "identity.value"),
        (phone("(415) 555-2671"), "identity.value"),
        ({"kind": "fax", "value": "x"}, "identity.kind"),
        ({"kind": "email"}, "identity.value"),
    ],
    ids=["bad-email", "short-phone", "national-phone", "bad-kind", "missing-value"],
)
def test_find_invalid_identity(call: Caller, identity: dict[str, Any], param: str) -> None:
    error = err(call("contact.find_by_identity", {"identity": identity}), "invalid_argument")
    assert error["param"] == param


# -- contact.upsert --------------------------------------------------------------------------------


def test_upsert_creates_then_updates(call: Caller) -> None:
    first = ok(
        call(
            "contact.upsert",
            {"identity": email("Ada@Lovelace.dev"), "given_name": "Ada", "company": "AE"},
        )
    )
    assert first["created"] is True
    assert set(first) == {"id", "created"}
    created = ok(call("contact.get", {"id": first["id"]}))
    assert created["given_name"] == "Ada"
    assert created["display_name"] == "Ada"
    [ident] = created["identities"]
    assert (ident["value"], ident["normalized"], ident["primary"]) == (
        "Ada@Lovelace.dev",
        ADA,
        True,
    )

    second = ok(
        call(
            "contact.upsert",
            {"identity": email("ADA@LOVELACE.DEV"), "stage": "customer", "company": None},
        )
    )
    assert second == {"id": first["id"], "created": False}
    updated = ok(call("contact.get", {"id": first["id"]}))
    assert updated["stage"] == "customer"
    assert updated["company"] is None
    assert {k: updated[k] for k in ("given_name", "display_name", "identities", "created_at")} == {
        k: created[k] for k in ("given_name", "display_name", "identities", "created_at")
    }
    assert updated["updated_at"] > created["updated_at"]
    assert listed_ids(call) == [first["id"]]
    assert ops_on(call, first["id"]) == ["contact.upsert", "contact.upsert"]


def test_upsert_with_phone_spellings(call: Caller) -> None:
    first = ok(call("contact.upsert", {"identity": phone(PHONE), "owner": "a"}))
    second = ok(call("contact.upsert", {"identity": phone("+1 (415) 555-2671"), "owner": "b"}))
    assert second == {"id": first["id"], "created": False}
    assert ok(call("contact.get", {"id": first["id"]}))["owner"] == "b"


def test_upsert_matches_a_contact_made_by_create(call: Caller) -> None:
    created = create(call, **FULL, identities=[email("x@y.dev"), email(ADA)])
    result = ok(
        call("contact.upsert", {"identity": email("ADA@lovelace.dev"), "title": "Countess"})
    )
    assert result == {"id": created["id"], "created": False}
    got = ok(call("contact.get", {"id": created["id"]}))
    assert got == {**created, "title": "Countess", "updated_at": got["updated_at"]}


@pytest.mark.parametrize(
    "fields",
    [{}, {"stage": "lead"}, {"given_name": "Ada", "attributes": {"tier": 1}}, {"attributes": None}],
    ids=["nothing", "same-stage", "same-fields", "null-attributes-already-empty"],
)
def test_upsert_without_changes_leaves_the_contact_alone(
    call: Caller, fields: dict[str, Any]
) -> None:
    attributes = fields.get("attributes") or {}
    created = create(
        call, given_name="Ada", stage="lead", attributes=attributes, identities=[email(ADA)]
    )
    result = ok(call("contact.upsert", {"identity": email(ADA), **fields}))
    assert result == {"id": created["id"], "created": False}
    assert ok(call("contact.get", {"id": created["id"]})) == created
    assert all_ops(call) == ["contact.create", "contact.upsert"]


def test_upsert_after_delete_creates_a_new_contact(call: Caller) -> None:
    first = ok(call("contact.upsert", {"identity": email(ADA), "given_name": "Ada"}))
    ok(call("contact.delete", {"id": first["id"]}))
    second = ok(call("contact.upsert", {"identity": email(ADA), "stage": "lead"}))
    assert second["created"] is True
    assert second["id"] != first["id"]
    got = ok(call("contact.get", {"id": second["id"]}))
    assert got["given_name"] is None
    assert got["stage"] == "lead"


@pytest.mark.parametrize(
    ("args", "param"),
    [
        ({"identity": email("nope")}, "identity.value"),
        ({"identity": phone("(415) 555-2671")}, "identity.value"),
        ({"given_name": "Ada"}, "identity"),
        ({"identity": email(ADA), "stage": "vip"}, "stage"),
    ],
    ids=["bad-email", "national-phone", "missing", "bad-stage"],
)
def test_upsert_rejects_bad_arguments(call: Caller, args: dict[str, Any], param: str) -> None:
    assert err(call("contact.upsert", args), "invalid_argument")["param"] == param
    assert listed_ids(call) == []


# -- identity.add ----------------------------------------------------------------------------------


def test_identity_add(call: Caller) -> None:
    contact = create(call, identities=[email(ADA)])
    added = ok(
        call(
            "identity.add",
            {"contact_id": contact["id"], **phone("+1 (415) 555-2671"), "source": "crm"},
        )
    )
    assert added["object"] == "identity"
    assert added["contact_id"] == contact["id"]
    assert (added["kind"], added["value"], added["normalized"]) == (
        "phone",
        "+1 (415) 555-2671",
        PHONE_E164,
    )
    assert added["primary"] is True  # first phone of the contact
    assert added["source"] == "crm"
    got = ok(call("contact.get", {"id": contact["id"]}))
    assert identity_of(got, "phone", PHONE_E164) == added
    assert got["updated_at"] > contact["updated_at"]
    second = ok(call("identity.add", {"contact_id": contact["id"], **email("b@x.dev")}))
    assert second["primary"] is False  # the contact already has a primary email
    assert ok(call("contact.find_by_identity", {"identity": phone(PHONE)}))["id"] == contact["id"]
    assert ops_on(call, contact["id"]) == ["contact.create", "identity.add", "identity.add"]


def test_identity_add_primary_moves_primary(call: Caller) -> None:
    contact = create(call, identities=[email("a@x.dev"), email("b@x.dev"), phone(PHONE)])
    ok(call("identity.add", {"contact_id": contact["id"], **email("c@x.dev", primary=True)}))
    got = ok(call("contact.get", {"id": contact["id"]}))
    assert primaries(got) == {"email": ["c@x.dev"], "phone": [PHONE_E164]}
    ok(call("identity.add", {"contact_id": contact["id"], **email("d@x.dev", primary=False)}))
    assert primaries(ok(call("contact.get", {"id": contact["id"]})))["email"] == ["c@x.dev"]


def test_identity_add_existing_returns_it(call: Caller) -> None:
    contact = create(call, identities=[email(ADA), email("b@x.dev")])
    existing = identity_of(contact, "email", "b@x.dev")
    again = ok(
        call("identity.add", {"contact_id": contact["id"], **email("B@X.dev", primary=True)})
    )
    assert again == existing
    got = ok(call("contact.get", {"id": contact["id"]}))
    assert got["identities"] == contact["identities"]
    assert got["updated_at"] == contact["updated_at"]
    assert all_ops(call) == ["contact.create", "identity.add"]


def test_identity_add_conflict_and_not_found(call: Caller) -> None:
    owner = create(call, identities=[email(ADA)])
    contact = create(call)
    error = err(
        call("identity.add", {"contact_id": contact["id"], **email("ADA@lovelace.dev")}), "conflict"
    )
    assert error["contact_id"] == owner["id"]
    assert owner["id"] in error["message"]
    assert ok(call("contact.get", {"id": contact["id"]}))["identities"] == []
    error = err(
        call("identity.add", {"contact_id": UNKNOWN_CONTACT, **email("x@y.dev")}), "not_found"
    )
    assert error["param"] == "contact_id"
    assert all_ops(call) == ["contact.create", "contact.create"]


@pytest.mark.parametrize(
    ("identity", "param"),
    [
        (email("nope"), "value"),
        (phone("(415) 555-2671"), "value"),
        ({"kind": "fax", "value": "x"}, "kind"),
    ],
    ids=["bad-email", "national-phone", "bad-kind"],
)
def test_identity_add_invalid_value(call: Caller, identity: dict[str, Any], param: str) -> None:
    contact = create(call)
    error = err(call("identity.add", {"contact_id": contact["id"], **identity}), "invalid_argument")
    assert error["param"] == param


# -- identity.list ---------------------------------------------------------------------------------


def test_identity_list_paginates_live_identities(call: Caller) -> None:
    values = [f"u{i}@x.dev" for i in range(6)]
    contact = create(call, identities=[email(v) for v in values])
    other_contact = create(call, identities=[email("other@x.dev")])
    by_value = {i["normalized"]: i["id"] for i in contact["identities"]}
    ok(call("identity.remove", {"id": by_value["u3@x.dev"]}))
    live = [by_value[v] for v in values if v != "u3@x.dev"]
    assert live == sorted(live)  # oldest first: the order they were given in

    seen: list[str] = []
    sizes: list[int] = []
    cursor: str | None = None
    while True:
        args: dict[str, Any] = {"contact_id": contact["id"], "limit": 2}
        if cursor:
            args["starting_after"] = cursor
        page = ok(call("identity.list", args))
        assert all(i["contact_id"] == contact["id"] for i in page["data"])
        seen.extend(i["id"] for i in page["data"])
        sizes.append(len(page["data"]))
        if not page["has_more"]:
            assert page["next_cursor"] is None
            break
        cursor = page["next_cursor"]
        assert cursor == page["data"][-1]["id"]
    assert sizes == [2, 2, 1]
    assert seen == live
    whole = ok(call("identity.list", {"contact_id": contact["id"]}))
    assert [i["id"] for i in whole["data"]] == live
    assert whole["data"] == ok(call("contact.get", {"id": contact["id"]}))["identities"]
    assert [
        i["normalized"]
        for i in ok(call("identity.list", {"contact_id": other_contact["id"]}))["data"]
    ] == ["other@x.dev"]


def test_identity_list_errors(call: Caller) -> None:
    assert (
        err(call("identity.list", {"contact_id": UNKNOWN_CONTACT}), "not_found")["param"]
        == "contact_id"
    )
    contact = create(call)
    err(call("identity.list", {"contact_id": contact["id"], "limit": 0}), "invalid_argument")
    err(call("identity.list", {"contact_id": contact["id"], "limit": 101}), "invalid_argument")
    assert ok(call("identity.list", {"contact_id": contact["id"]}))["data"] == []


# -- identity.remove -------------------------------------------------------------------------------


def test_identity_remove_frees_the_value(call: Caller) -> None:
    first = create(call, identities=[email(ADA), phone(PHONE)])
    second = create(call)
    ident = identity_of(first, "email", ADA)
    result = ok(call("identity.remove", {"id": ident["id"]}))
    assert result["id"] == ident["id"]
    assert result["deleted"] is True
    assert isinstance(result["undo_token"], str) and result["undo_token"].startswith("undo_")
    got = ok(call("contact.get", {"id": first["id"]}))
    assert [i["kind"] for i in got["identities"]] == ["phone"]
    assert got["updated_at"] > first["updated_at"]
    err(call("contact.find_by_identity", {"identity": email(ADA)}), "not_found")

    moved = ok(call("identity.add", {"contact_id": second["id"], **email("Ada@Lovelace.dev")}))
    assert moved["id"] != ident["id"]
    assert moved["primary"] is True
    assert ok(call("contact.find_by_identity", {"identity": email(ADA)}))["id"] == second["id"]

    error = err(call("identity.remove", {"id": ident["id"]}), "not_found")
    assert error["param"] == "id"
    err(call("identity.remove", {"id": UNKNOWN_IDENTITY}), "not_found")
    err(call("identity.remove", {"id": first["id"]}), "invalid_argument")
    assert ops_on(call, first["id"]) == ["contact.create", "identity.remove"]
    assert ops_on(call, second["id"]) == ["contact.create", "identity.add"]
    assert ops_on(call, ident["id"]) == ["contact.create", "identity.remove"]


def test_identity_remove_then_create_elsewhere(call: Caller) -> None:
    first = create(call, identities=[phone(PHONE)])
    ok(call("identity.remove", {"id": first["identities"][0]["id"]}))
    second = create(call, identities=[phone("+1 (415) 555-2671")])
    assert ok(call("contact.find_by_identity", {"identity": phone(PHONE)}))["id"] == second["id"]


# -- the audit trail -------------------------------------------------------------------------------


def test_every_write_is_one_action(call: Caller) -> None:
    steps: list[tuple[str, dict[str, Any]]] = [
        ("contact.create", {"given_name": "Ada", "identities": [email(ADA)]}),
        ("contact.update", {"stage": "lead"}),
        ("identity.add", {"kind": "phone", "value": PHONE}),
        ("contact.upsert", {"identity": email("ADA@lovelace.dev"), "stage": "customer"}),
        ("identity.remove", {}),
        ("contact.delete", {}),
    ]
    contact_id = ""
    phone_id = ""
    action_ids: list[str] = []
    for n, (op, args) in enumerate(steps):
        if op in ("contact.update", "contact.delete"):
            args = {"id": contact_id, **args}
        elif op == "identity.add":
            args = {"contact_id": contact_id, **args}
        elif op == "identity.remove":
            args = {"id": phone_id}
        outcome = call(op, args)
        result = ok(outcome)
        assert outcome.action_id is not None and outcome.action_id.startswith("act_")
        action_ids.append(outcome.action_id)
        if op == "contact.create":
            contact_id = result["id"]
        if op == "identity.add":
            phone_id = result["id"]
        assert ops_on(call, contact_id) == [s[0] for s in steps[: n + 1]]
    page = ok(call("action.list", {"target": contact_id}))
    assert [a["id"] for a in page["data"]] == action_ids[::-1]
    assert all(contact_id in a["targets"] for a in page["data"])
    assert all_ops(call) == [s[0] for s in steps]
    # reads are not audited
    for op, args in (
        ("contact.get", {"id": contact_id}),
        ("contact.list", {}),
        ("identity.list", {"contact_id": contact_id}),
        ("contact.find_by_identity", {"identity": email(ADA)}),
    ):
        call(op, args)
    assert all_ops(call) == [s[0] for s in steps]
