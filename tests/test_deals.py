"""Deals and expenses through the real engine on SQLite and PostgreSQL: defaults from the business
profile, status derived from the stage, the history rows behind the funnel and MRR, list filters,
soft delete with undo, account isolation and hostile input."""

from __future__ import annotations

from typing import Any

import pytest
import sqlalchemy as sa

from conftest import Caller, err, ok
from krabs.accounts import NewAccount, create_account
from krabs.engine import Engine
from krabs.store.tables import deal_changes

UNKNOWN_DEAL = "dl_01HG7Z4X9Q8M2N7P3R5T6V8W"


@pytest.fixture
def other(engine: Engine) -> NewAccount:
    return create_account(engine.store, "other")


def create(call: Caller, **args: Any) -> dict[str, Any]:
    return ok(call("deal.create", {"title": "Annual plan", **args}))


def history(engine: Engine, deal_id: str) -> list[tuple[Any, ...]]:
    c = deal_changes
    with engine.store.connect(write=False) as conn:
        rows = conn.execute(
            sa.select(c.c.from_stage, c.c.stage, c.c.status, c.c.amount, c.c.deleted)
            .where(c.c.deal_id == deal_id)
            .order_by(c.c.at, c.c.id)
        ).all()
    return [tuple(r) for r in rows]


def listed(call: Caller, **args: Any) -> list[str]:
    return [d["id"] for d in ok(call("deal.list", args))["data"]]


# -- create / get ----------------------------------------------------------------------------------


def test_create_defaults_come_from_the_profile(call: Caller, engine: Engine) -> None:
    ok(call("businessProfile.set", {"currency": "EUR", "pipeline_stages": ["new", "won", "lost"]}))
    deal = create(call)
    assert deal["object"] == "deal" and deal["id"].startswith("dl_")
    assert (deal["stage"], deal["status"], deal["currency"], deal["amount"]) == (
        "new",
        "open",
        "EUR",
        0,
    )
    assert (deal["closed_at"], deal["recurring_interval"], deal["tags"]) == (None, "none", [])
    assert ok(call("deal.get", {"id": deal["id"]})) == deal
    assert history(engine, deal["id"]) == [(None, "new", "open", 0, False)]


def test_create_round_trips_every_field(call: Caller) -> None:
    contact = ok(call("contact.create", {"display_name": "Ada"}))
    fields = {
        "title": "Engines for the Royal Society",
        "contact_id": contact["id"],
        "amount": 1_200_000,
        "currency": "gbp",
        "stage": "proposal",
        "source_channel": "referral",
        "recurring_interval": "year",
        "expected_close_date": "2026-09-30",
        "owner": "agent:sales",
        "attributes": {"seats": 12},
    }
    deal = create(call, **fields)
    assert {k: deal[k] for k in fields} == {**fields, "currency": "GBP"}


def test_created_won_is_closed(call: Caller) -> None:
    deal = create(call, stage="won", closed_at="2026-01-02T03:04:05+01:00")
    assert (deal["status"], deal["closed_at"]) == ("won", "2026-01-02T02:04:05.000000Z")
    now_won = create(call, stage="lost")
    assert now_won["status"] == "lost" and now_won["closed_at"] == now_won["created_at"]


# -- update and history ----------------------------------------------------------------------------


def test_moving_through_the_pipeline_closes_and_reopens(call: Caller, engine: Engine) -> None:
    deal = create(call, amount=500)
    won = ok(call("deal.update", {"id": deal["id"], "stage": "won"}))
    assert won["status"] == "won" and won["closed_at"] is not None
    renamed = ok(call("deal.update", {"id": deal["id"], "title": "Renamed"}))
    assert renamed["closed_at"] == won["closed_at"]
    reopened = ok(call("deal.update", {"id": deal["id"], "stage": "proposal", "amount": 700}))
    assert (reopened["status"], reopened["closed_at"], reopened["amount"]) == ("open", None, 700)
    lost = ok(call("deal.update", {"id": deal["id"], "stage": "lost"}))
    assert lost["status"] == "lost"
    assert history(engine, deal["id"]) == [
        (None, "lead", "open", 500, False),
        ("lead", "won", "won", 500, False),
        ("won", "proposal", "open", 700, False),
        ("proposal", "lost", "lost", 700, False),
    ]


def test_closed_at_can_be_corrected_without_a_history_row(call: Caller, engine: Engine) -> None:
    deal = create(call, stage="won")
    fixed = ok(call("deal.update", {"id": deal["id"], "closed_at": "2026-01-01"}))
    assert fixed["closed_at"] == "2026-01-01T00:00:00.000000Z"
    assert len(history(engine, deal["id"])) == 1


def test_effective_at_orders_history(call: Caller) -> None:
    deal = create(call, effective_at="2026-01-10T00:00:00Z")
    e = err(
        call("deal.update", {"id": deal["id"], "stage": "won", "effective_at": "2026-01-09"}),
        "invalid_argument",
    )
    assert (
        e["param"] == "effective_at" and "before this deal's last recorded change" in e["message"]
    )
    future = call("deal.update", {"id": deal["id"], "stage": "won", "closed_at": "2999-01-01"})
    assert err(future, "invalid_argument")["param"] == "closed_at"
    e = err(
        call("deal.update", {"id": deal["id"], "effective_at": "2026-02-01"}), "invalid_argument"
    )
    assert e["param"] == "effective_at"
    ok(call("deal.update", {"id": deal["id"], "stage": "won", "closed_at": "2026-01-10"}))


def test_unknown_stage_lists_the_valid_ones(call: Caller) -> None:
    e = err(call("deal.create", {"title": "x", "stage": "negotiation"}), "invalid_argument")
    assert e["param"] == "stage"
    assert "stage must be one of lead, qualified, proposal, won, lost" in e["message"]
    deal = create(call)
    e = err(call("deal.update", {"id": deal["id"], "stage": "closed"}), "invalid_argument")
    assert "lead, qualified, proposal, won, lost" in e["message"]


def test_channels_are_checked_when_the_profile_lists_them(call: Caller) -> None:
    assert create(call, source_channel="anything")["source_channel"] == "anything"
    ok(call("businessProfile.set", {"marketing_channels": ["ads", "seo"]}))
    e = err(call("deal.create", {"title": "x", "source_channel": "tv"}), "invalid_argument")
    assert e["param"] == "source_channel" and "ads, seo" in e["message"]
    assert create(call, source_channel="seo")["source_channel"] == "seo"


def test_closed_at_needs_a_terminal_stage(call: Caller) -> None:
    e = err(call("deal.create", {"title": "x", "closed_at": "2026-01-01"}), "invalid_argument")
    assert e["param"] == "closed_at" and "won and lost" in e["message"]


def test_update_with_nothing_or_null_required_fields(call: Caller) -> None:
    deal = create(call)
    assert err(call("deal.update", {"id": deal["id"]}), "invalid_argument")["param"] == "id"
    for field in ("title", "amount", "currency", "stage", "recurring_interval"):
        e = err(call("deal.update", {"id": deal["id"], field: None}), "invalid_argument")
        assert e["param"] == field


def test_update_clears_optional_fields(call: Caller) -> None:
    contact = ok(call("contact.create", {"display_name": "Ada"}))
    deal = create(call, contact_id=contact["id"], owner="me", attributes={"a": 1})
    cleared = ok(
        call(
            "deal.update", {"id": deal["id"], "contact_id": None, "owner": None, "attributes": None}
        )
    )
    assert (cleared["contact_id"], cleared["owner"], cleared["attributes"]) == (None, None, {})


# -- list ------------------------------------------------------------------------------------------


def test_list_filters(call: Caller) -> None:
    ok(call("businessProfile.set", {"marketing_channels": ["ads", "seo"]}))
    contact = ok(call("contact.create", {"display_name": "Ada"}))
    a = create(call, stage="qualified", contact_id=contact["id"], source_channel="ads")
    b = create(call, stage="won", closed_at="2026-03-05", currency="GBP")
    c = create(call, stage="lost", closed_at="2026-04-05", source_channel="seo")
    assert listed(call) == [c["id"], b["id"], a["id"]]
    assert listed(call, stage="qualified") == [a["id"]]
    assert listed(call, status="won") == [b["id"]]
    assert listed(call, contact_id=contact["id"]) == [a["id"]]
    assert listed(call, source_channel="seo") == [c["id"]]
    assert listed(call, currency="GBP") == [b["id"]]
    assert listed(call, closed_since="2026-03-01", closed_until="2026-04-01") == [b["id"]]
    assert listed(call, closed_since="2026-03-01") == [c["id"], b["id"]]
    first = ok(call("deal.list", {"limit": 2}))
    assert first["has_more"] and first["next_cursor"] == b["id"]
    assert listed(call, starting_after=first["next_cursor"]) == [a["id"]]


def test_list_by_tag_and_tags_in_the_object(call: Caller) -> None:
    a, b = create(call), create(call)
    tag = ok(call("tag.create", {"name": "VIP"}))
    ok(call("tag.attach", {"tag": "vip", "target_id": a["id"]}))
    assert listed(call, tag="VIP") == [a["id"]] and listed(call, tag=tag["id"]) == [a["id"]]
    assert [t["name"] for t in ok(call("deal.get", {"id": a["id"]}))["tags"]] == ["VIP"]
    assert ok(call("deal.get", {"id": b["id"]}))["tags"] == []
    assert err(call("deal.list", {"tag": "nope"}), "not_found")["param"] == "tag"


# -- delete and undo -------------------------------------------------------------------------------


def test_delete_is_soft_and_undoable(call: Caller, engine: Engine) -> None:
    deal = create(call, stage="won", recurring_interval="month", amount=900)
    gone = ok(call("deal.delete", {"id": deal["id"]}))
    assert gone["deleted"] is True and gone["undo_token"].startswith("undo_")
    assert err(call("deal.get", {"id": deal["id"]}), "not_found")["param"] == "id"
    assert listed(call) == []
    assert history(engine, deal["id"])[-1] == ("won", "won", "won", 900, True)
    err(call("deal.delete", {"id": deal["id"]}), "not_found")
    ok(call("action.undo", {"undo_token": gone["undo_token"]}))
    assert ok(call("deal.get", {"id": deal["id"]})) == deal
    assert history(engine, deal["id"]) == [(None, "won", "won", 900, False)]


# -- isolation and hostile input -------------------------------------------------------------------


def test_other_accounts_ids_are_not_found(call: Caller, other: NewAccount) -> None:
    theirs = ok(call("deal.create", {"title": "Theirs"}, key=other.secret))
    their_contact = ok(call("contact.create", {"display_name": "T"}, key=other.secret))
    for op, args in [
        ("deal.get", {"id": theirs["id"]}),
        ("deal.update", {"id": theirs["id"], "amount": 1}),
        ("deal.delete", {"id": theirs["id"]}),
    ]:
        assert err(call(op, args), "not_found")["param"] == "id"
    e = err(call("deal.create", {"title": "x", "contact_id": their_contact["id"]}), "not_found")
    assert e["param"] == "contact_id"
    assert listed(call) == []
    assert ok(call("deal.get", {"id": theirs["id"]}, key=other.secret))["amount"] == 0


def test_deleted_contact_cannot_be_linked(call: Caller) -> None:
    contact = ok(call("contact.create", {"display_name": "Gone"}))
    ok(call("contact.delete", {"id": contact["id"]}))
    err(call("deal.create", {"title": "x", "contact_id": contact["id"]}), "not_found")


@pytest.mark.parametrize(
    ("args", "param"),
    [
        ({"amount": -1}, "amount"),
        ({"amount": 10**15 + 1}, "amount"),
        ({"amount": 10.5}, "amount"),
        ({"amount": "100"}, "amount"),
        ({"currency": "XYZ"}, "currency"),
        ({"currency": "EURO"}, "currency"),
        ({"currency": "€"}, "currency"),
        ({"recurring_interval": "week"}, "recurring_interval"),
        ({"expected_close_date": "2026-13-01"}, "expected_close_date"),
        ({"closed_at": "not a time"}, "closed_at"),
        ({"contact_id": "not-an-id"}, "contact_id"),
        ({"title": ""}, "title"),
        ({"title": "x" * 401}, "title"),
        ({"title": "two\nlines"}, "title"),
        ({"attributes": {"k": "v" * 70_000}}, "attributes"),
        ({"stage": "x" * 81}, "stage"),
        ({"status": "won"}, "status"),
    ],
)
def test_create_rejects_hostile_input(call: Caller, args: dict[str, Any], param: str) -> None:
    e = err(call("deal.create", {"title": "Deal", **args}), "invalid_argument")
    assert e["param"] == param
    assert listed(call) == []


def test_missing_records_are_not_found(call: Caller) -> None:
    for op in ("deal.get", "deal.delete"):
        err(call(op, {"id": UNKNOWN_DEAL}), "not_found")
    err(call("deal.update", {"id": UNKNOWN_DEAL, "title": "x"}), "not_found")
    assert err(call("deal.get", {"id": "ct_01HG7Z4X9Q8M2N7P3R5T6V8W"}), "invalid_argument")


# -- expenses --------------------------------------------------------------------------------------


def spend(call: Caller, **args: Any) -> dict[str, Any]:
    base = {"amount": 1000, "category": "advertising", "incurred_on": "2026-02-01"}
    return ok(call("expense.create", {**base, **args}))


def test_expense_create_list_delete(call: Caller) -> None:
    ok(call("businessProfile.set", {"currency": "JPY", "marketing_channels": ["ads"]}))
    a = spend(call, channel="ads", description="Search ads")
    assert a["object"] == "expense" and a["id"].startswith("ex_")
    assert (a["currency"], a["channel"], a["incurred_on"]) == ("JPY", "ads", "2026-02-01")
    b = spend(call, category="tools", currency="USD", incurred_on="2026-03-01")

    def ids(**filters: Any) -> list[str]:
        return [e["id"] for e in ok(call("expense.list", filters))["data"]]

    assert ids() == [b["id"], a["id"]]
    assert ids(category="tools") == [b["id"]] and ids(channel="ads") == [a["id"]]
    assert ids(currency="JPY") == [a["id"]]
    assert ids(since="2026-02-02") == [b["id"]] and ids(until="2026-02-01") == [a["id"]]
    gone = ok(call("expense.delete", {"id": a["id"]}))
    assert ids() == [b["id"]]
    ok(call("action.undo", {"undo_token": gone["undo_token"]}))
    assert ids() == [b["id"], a["id"]]
    e = err(
        call(
            "expense.create",
            {"amount": 5, "category": "x", "incurred_on": "2026-01-01", "channel": "tv"},
        ),
        "invalid_argument",
    )
    assert e["param"] == "channel"


@pytest.mark.parametrize(
    ("args", "param"),
    [
        ({"amount": 0}, "amount"),
        ({"amount": -100}, "amount"),
        ({"amount": 1.5}, "amount"),
        ({"currency": "ABC"}, "currency"),
        ({"category": "Advertising"}, "category"),
        ({"incurred_on": "2026-02-30"}, "incurred_on"),
        ({"incurred_on": "2026-02-01T10:00:00Z"}, "incurred_on"),
        ({"description": "x" * 1001}, "description"),
        ({"vendor": "Google"}, "vendor"),
    ],
)
def test_expense_rejects_hostile_input(call: Caller, args: dict[str, Any], param: str) -> None:
    base = {"amount": 1000, "category": "advertising", "incurred_on": "2026-02-01"}
    assert err(call("expense.create", {**base, **args}), "invalid_argument")["param"] == param


def test_expenses_of_another_account(call: Caller, other: NewAccount) -> None:
    theirs = ok(
        call(
            "expense.create",
            {"amount": 5, "category": "x", "incurred_on": "2026-01-01"},
            key=other.secret,
        )
    )
    err(call("expense.delete", {"id": theirs["id"]}), "not_found")
    assert ok(call("expense.list", {}))["data"] == []
