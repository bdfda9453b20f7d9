"""Scenarios for deals, the business profile, the account, expenses and finance."""

from __future__ import annotations

from typing import Any

from krabs.compliance.scenarios import Setup, scenario, unique

PERIOD = {"from": "2020-01-01", "to": "2020-03-31"}


def new_deal(setup: Setup, **fields: Any) -> dict[str, Any]:
    return setup("deal.create", {"title": f"Deal {unique()}", "amount": 100000, **fields})


def new_expense(setup: Setup) -> dict[str, Any]:
    return setup(
        "expense.create",
        {"amount": 2500, "currency": "EUR", "category": "advertising", "incurred_on": "2020-02-01"},
    )


@scenario("businessProfile.get")
def _profile_get(setup: Setup) -> dict[str, Any]:
    return {}


@scenario("businessProfile.set")
def _profile_set(setup: Setup) -> dict[str, Any]:
    return {"company": f"Co {unique()}", "currency": "EUR", "timezone": "Europe/Paris"}


@scenario("account.update")
def _account_update(setup: Setup) -> dict[str, Any]:
    return {"name": f"Account {unique()}", "default_region": "GB"}


@scenario("deal.create")
def _deal_create(setup: Setup) -> dict[str, Any]:
    return {
        "title": "Annual plan",
        "amount": 1200000,
        "currency": "EUR",
        "recurring_interval": "year",
    }


@scenario("deal.get")
def _deal_get(setup: Setup) -> dict[str, Any]:
    return {"id": new_deal(setup)["id"]}


@scenario("deal.list")
def _deal_list(setup: Setup) -> dict[str, Any]:
    new_deal(setup)
    return {"status": "open", "limit": 5}


@scenario("deal.update")
def _deal_update(setup: Setup) -> dict[str, Any]:
    return {"id": new_deal(setup)["id"], "stage": "won", "amount": 150000}


@scenario("deal.delete")
def _deal_delete(setup: Setup) -> dict[str, Any]:
    return {"id": new_deal(setup)["id"]}


@scenario("expense.create")
def _expense_create(setup: Setup) -> dict[str, Any]:
    return {"amount": 9900, "currency": "USD", "category": "tools", "incurred_on": "2020-01-15"}


@scenario("expense.list")
def _expense_list(setup: Setup) -> dict[str, Any]:
    new_expense(setup)
    return {"category": "advertising"}


@scenario("expense.delete")
def _expense_delete(setup: Setup) -> dict[str, Any]:
    return {"id": new_expense(setup)["id"]}


def _finance(setup: Setup) -> dict[str, Any]:
    new_deal(setup, stage="won", closed_at="2020-02-10T12:00:00Z", recurring_interval="month")
    new_expense(setup)
    return {**PERIOD, "explain": True}


for _op in ("finance.summary", "finance.mrr", "finance.expenses_by_category", "finance.funnel"):
    scenario(_op)(_finance)
