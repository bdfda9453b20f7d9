"""The business profile (defaults, merge semantics, validation, the pipeline guard) and
account.update (name, phone region, settings), through the real engine on SQLite and PostgreSQL."""

from __future__ import annotations

from typing import Any

import pytest

from conftest import Caller, err, ok
from krabs.accounts import NewAccount, create_account
from krabs.engine import Engine

DEFAULT_STAGES = ["lead", "qualified", "proposal", "won", "lost"]


@pytest.fixture
def other(engine: Engine) -> NewAccount:
    return create_account(engine.store, "other")


# -- businessProfile -------------------------------------------------------------------------------


def test_get_before_any_set_is_the_defaults(call: Caller) -> None:
    got = ok(call("businessProfile.get"))
    assert got == {
        "object": "business_profile",
        "id": None,
        "company": None,
        "currency": "USD",
        "timezone": "UTC",
        "fiscal_year_start": 1,
        "kickoff_date": None,
        "pipeline_stages": DEFAULT_STAGES,
        "marketing_channels": [],
        "acquisition_categories": ["advertising", "marketing"],
        "attribution_window_days": 90,
        "targets": {"target_roas": None, "target_cac": {}},
        "created_at": None,
        "updated_at": None,
    }


def test_set_then_get_round_trips(call: Caller) -> None:
    fields: dict[str, Any] = {
        "company": "Analytical Engines",
        "currency": "EUR",
        "timezone": "Europe/London",
        "fiscal_year_start": 4,
        "kickoff_date": "2026-01-15",
        "pipeline_stages": ["lead", "demo", "proposal", "won", "lost"],
        "marketing_channels": ["google_ads", "linkedin"],
        "acquisition_categories": ["advertising"],
        "attribution_window_days": 30,
        "targets": {"target_roas": "3.5", "target_cac": {"EUR": 25000, "USD": 30000}},
    }
    set_ = ok(call("businessProfile.set", fields))
    assert set_["id"].startswith("bp_") and set_["created_at"] == set_["updated_at"]
    assert {k: set_[k] for k in fields} == fields
    assert ok(call("businessProfile.get")) == set_


def test_set_merges_and_null_resets(call: Caller) -> None:
    first = ok(call("businessProfile.set", {"company": "AE", "currency": "eur"}))
    assert first["currency"] == "EUR"
    second = ok(call("businessProfile.set", {"timezone": "Asia/Tokyo"}))
    assert (second["company"], second["currency"], second["timezone"]) == (
        "AE",
        "EUR",
        "Asia/Tokyo",
    )
    assert second["id"] == first["id"]
    third = ok(call("businessProfile.set", {"currency": None, "company": None}))
    assert (third["company"], third["currency"], third["timezone"]) == (None, "USD", "Asia/Tokyo")
    page = ok(call("action.list", {"limit": 10}))
    assert [a["op"] for a in page["data"]].count("businessProfile.set") == 3


def test_set_with_nothing_changed_writes_no_row_change(call: Caller) -> None:
    ok(call("businessProfile.set", {"company": "AE"}))
    plan = ok(call("businessProfile.set", {"company": "AE", "dry_run": True}))
    assert plan["diff"] == []


@pytest.mark.parametrize(
    ("args", "param", "says"),
    [
        ({"currency": "EURO"}, "currency", "ISO 4217"),
        ({"currency": "ZZZ"}, "currency", "ISO 4217"),
        ({"currency": 978}, "currency", ""),
        ({"timezone": "Mars/Olympus"}, "timezone", "IANA"),
        ({"timezone": "utc+2"}, "timezone", "IANA"),
        ({"fiscal_year_start": 13}, "fiscal_year_start", ""),
        ({"fiscal_year_start": 0}, "fiscal_year_start", ""),
        ({"kickoff_date": "2026-02-30"}, "kickoff_date", "date"),
        ({"pipeline_stages": ["lead", "lead", "won", "lost"]}, "pipeline_stages", "repeated: lead"),
        ({"pipeline_stages": ["lead", "qualified", "won"]}, "pipeline_stages", "missing lost"),
        ({"pipeline_stages": ["lead", "qualified", "closed"]}, "pipeline_stages", "won and lost"),
        ({"pipeline_stages": ["Lead", "won", "lost"]}, "pipeline_stages.0", ""),
        ({"pipeline_stages": ["won", "lost"]}, "pipeline_stages", ""),
        ({"marketing_channels": ["ads", "ads"]}, "marketing_channels", "repeated: ads"),
        ({"acquisition_categories": ["x" * 81]}, "acquisition_categories.0", ""),
        ({"attribution_window_days": -1}, "attribution_window_days", ""),
        ({"targets": {"target_cac": {"XYZ": 100}}}, "targets.target_cac.XYZ.[key]", ""),
        ({"targets": {"target_cac": {"EUR": -5}}}, "targets.target_cac.EUR", ""),
        ({"targets": {"target_roas": 3.5}}, "targets.target_roas", ""),
        ({"targets": {"target_roas": "lots"}}, "targets.target_roas", ""),
        ({"company": "x" * 201}, "company", ""),
        ({"pipeline": ["lead"]}, "pipeline", "accepted"),
    ],
)
def test_set_rejects_hostile_input(
    call: Caller, args: dict[str, Any], param: str, says: str
) -> None:
    e = err(call("businessProfile.set", args), "invalid_argument")
    assert e["param"] == param
    assert says in e["message"]
    assert ok(call("businessProfile.get"))["id"] is None


def test_dropping_a_stage_live_deals_are_in_is_a_conflict(call: Caller) -> None:
    deal = ok(call("deal.create", {"title": "Big one", "stage": "qualified"}))
    e = err(call("businessProfile.set", {"pipeline_stages": ["lead", "won", "lost"]}), "conflict")
    assert "qualified (1 deal(s))" in e["message"] and e["param"] == "pipeline_stages"
    ok(call("deal.delete", {"id": deal["id"]}))
    got = ok(call("businessProfile.set", {"pipeline_stages": ["lead", "won", "lost"]}))
    assert got["pipeline_stages"] == ["lead", "won", "lost"]


def test_profile_is_per_account(call: Caller, other: NewAccount) -> None:
    ok(call("businessProfile.set", {"company": "Mine", "currency": "GBP"}))
    theirs = ok(call("businessProfile.get", key=other.secret))
    assert (theirs["id"], theirs["company"], theirs["currency"]) == (None, None, "USD")


# -- account.update --------------------------------------------------------------------------------


def test_account_update(call: Caller, account: NewAccount) -> None:
    got = ok(
        call(
            "account.update",
            {"name": "Analytical Engines Ltd", "default_region": "gb", "settings": {"a": [1, 2]}},
        )
    )
    assert got["object"] == "account" and got["id"] == account.account_id
    assert (got["name"], got["default_region"], got["settings"]) == (
        "Analytical Engines Ltd",
        "GB",
        {"a": [1, 2]},
    )
    assert got["updated_at"] >= got["created_at"]
    again = ok(call("account.update", {"settings": None}))
    assert (again["name"], again["settings"]) == ("Analytical Engines Ltd", {})


def test_default_region_reads_national_phone_numbers(call: Caller) -> None:
    ok(call("account.update", {"default_region": "GB"}))
    contact = ok(
        call("contact.create", {"identities": [{"kind": "phone", "value": "020 7946 0018"}]})
    )
    assert contact["identities"][0]["normalized"] == "+442079460018"


def test_account_update_is_scoped_to_the_callers_account(
    call: Caller, account: NewAccount, other: NewAccount
) -> None:
    ok(call("account.update", {"name": "Renamed"}))
    theirs = ok(call("account.update", {"default_region": "FR"}, key=other.secret))
    assert theirs["id"] == other.account_id and theirs["name"] == "other"
    assert ok(call("account.update", {"default_region": "US"}))["name"] == "Renamed"


def test_account_update_is_audited(call: Caller) -> None:
    out = call("account.update", {"name": "Audited"})
    ok(out)
    action = ok(call("action.get", {"id": out.action_id}))
    assert action["op"] == "account.update"


@pytest.mark.parametrize(
    ("args", "param"),
    [
        ({}, "name"),
        ({"name": None}, "name"),
        ({"name": ""}, "name"),
        ({"name": "x" * 201}, "name"),
        ({"default_region": "ZZ"}, "default_region"),
        ({"default_region": "GBR"}, "default_region"),
        ({"settings": [1]}, "settings"),
        ({"settings": {"x": "y" * 70_000}}, "settings"),
        ({"id": "acct_1"}, "id"),
    ],
)
def test_account_update_rejects_hostile_input(
    call: Caller, args: dict[str, Any], param: str
) -> None:
    assert err(call("account.update", args), "invalid_argument")["param"] == param
