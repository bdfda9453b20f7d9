"""Finance figures against a fixed account whose numbers were computed by hand (written below, not
recomputed): twelve deals in EUR and USD moved through the pipeline at chosen past times, and six
expenses. Run on SQLite and PostgreSQL. The pure functions are also tested directly for rounding."""

from __future__ import annotations

from typing import Any

import pytest

from conftest import Caller, err, ok
from krabs.finance.history import Change, Deal, per_unit, ratio
from krabs.finance.mrr import monthly_value

Q1 = {"from": "2026-01-01", "to": "2026-03-31"}
Q2 = {"from": "2026-04-01", "to": "2026-06-30"}


def at(day: str, hour: str = "12:00") -> str:
    return f"2026-{day}T{hour}:00Z"


def build(call: Caller) -> dict[str, str]:
    """The fixture account. Returns deal and expense ids by name (D1…D12, X1…X6)."""
    ok(
        call(
            "businessProfile.set",
            {
                "currency": "EUR",
                "timezone": "UTC",
                "marketing_channels": ["ads", "referral", "seo"],
                "acquisition_categories": ["advertising"],
                "attribution_window_days": 60,
            },
        )
    )
    contacts = {n: ok(call("contact.create", {"display_name": n}))["id"] for n in "ABCDE"}
    ids: dict[str, str] = {}

    def deal(name: str, contact: str | None, opened: str, **fields: Any) -> None:
        args = {"title": name, "effective_at": at(opened), **fields}
        if contact:
            args["contact_id"] = contacts[contact]
        ids[name] = ok(call("deal.create", args))["id"]

    def move(name: str, day: str, **fields: Any) -> None:
        when = {"closed_at": at(day)} if fields.get("stage") in ("won", "lost") else {}
        ok(call("deal.update", {"id": ids[name], **(when or {"effective_at": at(day)}), **fields}))

    month, year = {"recurring_interval": "month"}, {"recurring_interval": "year"}
    deal("D1", "A", "01-05", amount=10000, stage="lead", source_channel="ads", **month)
    move("D1", "01-10", stage="qualified")
    move("D1", "01-20", stage="won")
    deal("D2", "A", "02-03", amount=120006, stage="proposal", source_channel="ads", **year)
    move("D2", "02-15", stage="won")
    deal("D3", "B", "01-12", amount=5000, currency="USD", source_channel="referral", **month)
    move("D3", "02-01", stage="won")
    deal("D4", "C", "01-15", amount=30000, source_channel="seo")
    move("D4", "01-25", stage="qualified")
    move("D4", "02-05", stage="proposal")
    move("D4", "03-01", stage="won")
    deal("D5", "C", "03-02", amount=7000, **month)
    move("D5", "03-10", stage="won")
    deal("D6", "D", "02-10", amount=20000, currency="USD", source_channel="ads")
    move("D6", "02-20", stage="lost")
    deal("D7", "E", "01-03", amount=50000, stage="qualified", source_channel="ads")
    move("D7", "02-12", stage="proposal")
    deal("D8", None, "03-05", amount=24010, source_channel="referral", **year)
    move("D3", "04-10", stage="lost")
    deal("D9", "B", "04-01", amount=15000, source_channel="referral")
    deal("D10", "D", "04-02", amount=8000, source_channel="ads", **month)
    move("D5", "04-15", amount=4000)
    move("D9", "04-20", stage="won")
    deal("D12", "E", "05-01", amount=1000, currency="USD", source_channel="seo", **month)
    move("D3", "05-05", stage="won")
    deal("D11", "A", "05-10", amount=6000, source_channel="ads")
    move("D11", "05-12", stage="qualified")
    move("D11", "05-14", stage="lead")
    move("D12", "05-20", stage="won")
    move("D11", "05-30", stage="lost")
    move("D12", "06-05", recurring_interval="none")
    move("D8", "06-10", stage="won")

    def spend(name: str, amount: int, currency: str, category: str, channel: str | None, day: str):
        args = {"amount": amount, "currency": currency, "category": category, "incurred_on": day}
        if channel:
            args["channel"] = channel
        ids[name] = ok(call("expense.create", args))["id"]

    spend("X1", 40000, "EUR", "advertising", "ads", "2026-01-10")
    spend("X2", 10000, "EUR", "advertising", "seo", "2026-02-15")
    spend("X3", 6000, "USD", "advertising", "referral", "2026-02-20")
    spend("X4", 5000, "EUR", "tools", None, "2026-03-03")
    spend("X5", 20000, "EUR", "advertising", "ads", "2026-03-15")
    spend("X6", 2000, "USD", "advertising", "ads", "2026-04-05")
    return ids


@pytest.fixture
def fx(call: Caller) -> dict[str, str]:
    return build(call)


def names(ids: dict[str, str], found: list[str]) -> list[str]:
    back = {v: k for k, v in ids.items()}
    return sorted(back[i] for i in found)


# -- summary ---------------------------------------------------------------------------------------


def test_summary_q1(call: Caller, fx: dict[str, str]) -> None:
    got = ok(call("finance.summary", Q1))
    assert got["object"] == "finance.summary"
    assert (got["from"], got["to"], got["timezone"]) == ("2026-01-01", "2026-03-31", "UTC")
    assert got["new_customers"] == 3
    assert got["by_currency"] == {
        "EUR": {
            "revenue_won": 167006,
            "deals_won": 4,
            "open_pipeline": 74010,
            "open_deals": 2,
            "mrr": 27001,
            "spend": 75000,
            "acquisition_spend": 70000,
            "cac": 23333,
            "roas": "2.39",
        },
        "USD": {
            "revenue_won": 5000,
            "deals_won": 1,
            "open_pipeline": 0,
            "open_deals": 0,
            "mrr": 5000,
            "spend": 6000,
            "acquisition_spend": 6000,
            "cac": 2000,
            "roas": "0.83",
        },
    }
    assert "ids" not in got["by_currency"]["EUR"] and "new_customer_ids" not in got


def test_summary_q2_is_historical(call: Caller, fx: dict[str, str]) -> None:
    got = ok(call("finance.summary", Q2))
    assert got["new_customers"] == 2
    assert got["by_currency"] == {
        "EUR": {
            "revenue_won": 39010,
            "deals_won": 2,
            "open_pipeline": 58000,
            "open_deals": 2,
            "mrr": 26002,
            "spend": 0,
            "acquisition_spend": 0,
            "cac": 0,
            "roas": None,
        },
        "USD": {
            "revenue_won": 6000,
            "deals_won": 2,
            "open_pipeline": 0,
            "open_deals": 0,
            "mrr": 5000,
            "spend": 2000,
            "acquisition_spend": 2000,
            "cac": 1000,
            "roas": "3.00",
        },
    }


def test_summary_explain_names_the_rows(call: Caller, fx: dict[str, str]) -> None:
    got = ok(call("finance.summary", {**Q1, "explain": True}))
    assert names(fx, got["new_customer_ids"]) == ["D1", "D3", "D4"]
    eur = got["by_currency"]["EUR"]["ids"]
    assert names(fx, eur["revenue_won"]) == ["D1", "D2", "D4", "D5"]
    assert names(fx, eur["open_pipeline"]) == ["D7", "D8"]
    assert names(fx, eur["mrr"]) == ["D1", "D2", "D5"]
    assert names(fx, eur["spend"]) == ["X1", "X2", "X4", "X5"]
    assert names(fx, eur["acquisition_spend"]) == ["X1", "X2", "X5"]
    usd = got["by_currency"]["USD"]["ids"]
    assert names(fx, usd["revenue_won"]) == ["D3"] and names(fx, usd["spend"]) == ["X3"]


def test_summary_of_one_month(call: Caller, fx: dict[str, str]) -> None:
    got = ok(call("finance.summary", {"from": "2026-02-01", "to": "2026-02-28"}))
    eur, usd = got["by_currency"]["EUR"], got["by_currency"]["USD"]
    assert (eur["revenue_won"], eur["mrr"], eur["open_pipeline"]) == (120006, 20001, 80000)
    assert (usd["revenue_won"], usd["mrr"], usd["open_pipeline"]) == (5000, 5000, 0)
    assert got["new_customers"] == 1  # B (A first won in January)


# -- MRR -------------------------------------------------------------------------------------------

ZERO = {"new": 0, "expansion": 0, "contraction": 0, "churn": 0, "reactivation": 0, "net": 0}


def mv(starting: int, ending: int, **moves: int) -> dict[str, int]:
    return {"starting": starting, **ZERO, **moves, "net": ending - starting, "ending": ending}


def test_mrr_movements_by_month(call: Caller, fx: dict[str, str]) -> None:
    got = ok(call("finance.mrr", {"from": "2026-01-01", "to": "2026-06-30"}))
    assert got["currencies"] == ["EUR", "USD"]
    months = {m["month"]: m["by_currency"] for m in got["months"]}
    assert list(months) == ["2026-01", "2026-02", "2026-03", "2026-04", "2026-05", "2026-06"]
    assert months["2026-01"] == {"EUR": mv(0, 10000, new=10000)}
    assert months["2026-02"] == {
        "EUR": mv(10000, 20001, expansion=10001),
        "USD": mv(0, 5000, new=5000),
    }
    assert months["2026-03"] == {"EUR": mv(20001, 27001, new=7000), "USD": mv(5000, 5000)}
    assert months["2026-04"] == {
        "EUR": mv(27001, 24001, contraction=-3000),
        "USD": mv(5000, 0, churn=-5000),
    }
    assert months["2026-05"] == {
        "EUR": mv(24001, 24001),
        "USD": mv(0, 6000, new=1000, reactivation=5000),
    }
    assert months["2026-06"] == {
        "EUR": mv(24001, 26002, new=2001),
        "USD": mv(6000, 5000, churn=-1000),
    }


def test_mrr_explain(call: Caller, fx: dict[str, str]) -> None:
    got = ok(call("finance.mrr", {"from": "2026-04-01", "to": "2026-05-31", "explain": True}))
    april, may = (m["by_currency"] for m in got["months"])
    assert names(fx, april["EUR"]["ids"]["contraction"]) == ["D5"]
    assert names(fx, april["USD"]["ids"]["churn"]) == ["D3"]
    assert names(fx, may["USD"]["ids"]["reactivation"]) == ["D3"]
    assert names(fx, may["USD"]["ids"]["new"]) == ["D12"]
    assert names(fx, may["EUR"]["ids"]["ending"]) == ["D1", "D2", "D5"]


def test_deleting_a_won_deal_ends_its_mrr_from_now(call: Caller, fx: dict[str, str]) -> None:
    ok(call("deal.delete", {"id": fx["D1"]}))
    past = ok(call("finance.mrr", {"from": "2026-01-01", "to": "2026-01-31"}))
    assert past["months"][0]["by_currency"]["EUR"]["ending"] == 10000
    today = ok(call("finance.summary", {"from": "2026-01-01", "to": "2099-12-31"}))
    assert today["by_currency"]["EUR"]["mrr"] == 26002 - 10000
    assert today["by_currency"]["EUR"]["open_pipeline"] == 58000


# -- expenses by category --------------------------------------------------------------------------


def test_expenses_by_category(call: Caller, fx: dict[str, str]) -> None:
    got = ok(call("finance.expenses_by_category", Q1))
    assert got["by_currency"] == {
        "EUR": {
            "total": 75000,
            "count": 4,
            "categories": {
                "advertising": {"amount": 70000, "count": 3},
                "tools": {"amount": 5000, "count": 1},
            },
        },
        "USD": {
            "total": 6000,
            "count": 1,
            "categories": {"advertising": {"amount": 6000, "count": 1}},
        },
    }
    explained = ok(call("finance.expenses_by_category", {**Q1, "explain": True}))
    eur = explained["by_currency"]["EUR"]
    assert names(fx, eur["categories"]["tools"]["ids"]) == ["X4"]
    assert names(fx, eur["ids"]) == ["X1", "X2", "X4", "X5"]
    ok(call("expense.delete", {"id": fx["X4"]}))
    after = ok(call("finance.expenses_by_category", Q1))["by_currency"]["EUR"]
    assert (after["total"], list(after["categories"])) == (70000, ["advertising"])


# -- funnel ----------------------------------------------------------------------------------------


def stage_rows(got: dict[str, Any]) -> list[tuple[Any, ...]]:
    return [(s["stage"], s["entered"], s["converted"], s["conversion_rate"]) for s in got["stages"]]


def test_funnel_stages_q1(call: Caller, fx: dict[str, str]) -> None:
    got = ok(call("finance.funnel", {**Q1, "explain": True}))
    assert stage_rows(got) == [
        ("lead", 6, 4, "0.6667"),
        ("qualified", 3, 3, "1.0000"),
        ("proposal", 3, 2, "0.6667"),
        ("won", 5, None, None),
        ("lost", 1, None, None),
    ]
    lead = got["stages"][0]["ids"]
    assert names(fx, lead["entered"]) == ["D1", "D3", "D4", "D5", "D6", "D8"]
    assert names(fx, lead["converted"]) == ["D1", "D3", "D4", "D5"]


def test_funnel_stages_q2_counts_moves_back(call: Caller, fx: dict[str, str]) -> None:
    got = ok(call("finance.funnel", Q2))
    assert stage_rows(got) == [
        ("lead", 4, 3, "0.7500"),
        ("qualified", 1, 0, "0.0000"),
        ("proposal", 0, 0, None),
        ("won", 4, None, None),
        ("lost", 2, None, None),
    ]


def channel_rows(got: dict[str, Any]) -> dict[Any, Any]:
    return {c["channel"]: (c["new_customers"], c["by_currency"]) for c in got["channels"]}


def test_funnel_channels_q1(call: Caller, fx: dict[str, str]) -> None:
    got = ok(call("finance.funnel", Q1))
    assert got["attribution_window_days"] == 60
    assert [c["channel"] for c in got["channels"]] == ["ads", "referral", "seo", None]
    assert channel_rows(got) == {
        "ads": (1, {"EUR": {"spend": 60000, "revenue": 130006, "roas": "2.17", "cac": 60000}}),
        "referral": (1, {"USD": {"spend": 6000, "revenue": 5000, "roas": "0.83", "cac": 6000}}),
        "seo": (1, {"EUR": {"spend": 10000, "revenue": 30000, "roas": "3.00", "cac": 10000}}),
        None: (0, {"EUR": {"spend": 5000, "revenue": 7000, "roas": "1.40", "cac": None}}),
    }


def test_funnel_channels_q2_attribution_window(call: Caller, fx: dict[str, str]) -> None:
    rows = channel_rows(ok(call("finance.funnel", Q2)))
    assert rows["ads"] == (0, {"USD": {"spend": 2000, "revenue": 0, "roas": "0.00", "cac": None}})
    assert rows["referral"] == (
        0,
        {"EUR": {"spend": 0, "revenue": 15000, "roas": None, "cac": None}},
    )
    assert rows["seo"] == (1, {"USD": {"spend": 0, "revenue": 1000, "roas": None, "cac": 0}})
    # D8 (97 days) and D3's second win (113 days after it opened) fall outside the 60-day window.
    assert rows[None] == (
        1,
        {
            "EUR": {"spend": 0, "revenue": 24010, "roas": None, "cac": 0},
            "USD": {"spend": 0, "revenue": 5000, "roas": None, "cac": 0},
        },
    )
    none = ok(call("finance.funnel", {**Q2, "explain": True}))["channels"][-1]
    assert names(fx, none["new_customer_ids"]) == ["D8"]
    assert names(fx, none["by_currency"]["USD"]["ids"]["revenue"]) == ["D3"]


# -- time zones, hostile periods, isolation --------------------------------------------------------


def test_periods_are_local_days(call: Caller) -> None:
    ok(call("businessProfile.set", {"timezone": "America/New_York", "currency": "USD"}))
    deal = ok(call("deal.create", {"title": "Late", "amount": 900, "effective_at": at("02-20")}))
    # 03:00 UTC on 1 March is 22:00 on 28 February in New York.
    ok(call("deal.update", {"id": deal["id"], "stage": "won", "closed_at": at("03-01", "03:00")}))
    feb = ok(call("finance.summary", {"from": "2026-02-01", "to": "2026-02-28"}))
    march = ok(call("finance.summary", {"from": "2026-03-01", "to": "2026-03-31"}))
    assert feb["by_currency"]["USD"]["revenue_won"] == 900
    assert "USD" not in march["by_currency"]


@pytest.mark.parametrize(
    ("op", "args", "param"),
    [
        ("finance.summary", {"from": "2026-03-01", "to": "2026-02-01"}, "from"),
        ("finance.summary", {"from": "2026-02-30"}, "from"),
        ("finance.summary", {"from": "yesterday"}, "from"),
        ("finance.summary", {"since": "2026-01-01"}, "since"),
        ("finance.mrr", {"from": "2000-01-01", "to": "2026-01-01"}, "from"),
        ("finance.funnel", {"to": 20260101}, "to"),
        ("finance.expenses_by_category", {"explain": "yes"}, "explain"),
    ],
)
def test_hostile_periods(call: Caller, op: str, args: dict[str, Any], param: str) -> None:
    assert err(call(op, args), "invalid_argument")["param"] == param


def test_figures_are_per_account(call: Caller, fx: dict[str, str], engine: Any) -> None:
    from krabs.accounts import create_account

    other = create_account(engine.store, "other")
    got = ok(call("finance.summary", Q1, key=other.secret))
    assert got["by_currency"] == {} and got["new_customers"] == 0
    assert ok(call("finance.mrr", Q1, key=other.secret))["currencies"] == []


def test_defaults_to_this_month_and_empty_account(call: Caller) -> None:
    got = ok(call("finance.summary", {}))
    assert got["from"].endswith("-01") and got["from"] <= got["to"]
    assert got["by_currency"] == {}
    mrr = ok(call("finance.mrr", {}))
    assert len(mrr["months"]) == 12 and all(m["by_currency"] == {} for m in mrr["months"])


# -- pure functions --------------------------------------------------------------------------------


def test_rounding_rules() -> None:
    def won(amount: int, interval: str) -> Change:
        return Change("dl_x", "2026-01-01T00:00:00.000000Z", "won", "won", amount, "EUR", interval)

    assert monthly_value(won(120006, "year")) == 10001  # 10000.5 rounds half up
    assert monthly_value(won(120005, "year")) == 10000  # 10000.42 rounds down
    assert monthly_value(won(11, "year")) == 1 and monthly_value(won(5, "year")) == 0
    assert monthly_value(won(700, "month")) == 700 and monthly_value(won(700, "none")) == 0
    lost = Change("dl_x", "2026-01-01T00:00:00.000000Z", "lost", "lost", 700, "EUR", "month")
    assert monthly_value(lost) == 0
    assert ratio(167006, 70000) == "2.39" and ratio(1, 8) == "0.13" and ratio(5, 0) is None
    assert ratio(2, 3, 4) == "0.6667"
    assert per_unit(70000, 3) == 23333 and per_unit(5, 2) == 3 and per_unit(1, 0) is None


def test_state_at_is_half_open() -> None:
    ts = "2026-02-01T00:00:00.000000Z"
    deal = Deal("dl_x", "ct_x", None, (Change("dl_x", ts, "won", "won", 1, "EUR", "month"),))
    assert deal.state_at(ts) is None
    assert deal.state_at("2026-02-01T00:00:00.000001Z") is not None
    assert deal.won_at("2026-03-01T00:00:00.000000Z") == ts


def test_over_http(http: Any) -> None:
    made = http.post(
        "/v1/expense.create", json={"amount": 700, "category": "ads", "incurred_on": "2026-02-03"}
    )
    assert made.status_code == 200, made.text
    got = http.post(
        "/v1/finance.expenses_by_category", json={"from": "2026-02-01", "to": "2026-02-28"}
    )
    assert got.status_code == 200 and got.json()["by_currency"]["USD"]["total"] == 700
    bad = http.post("/v1/finance.summary", json={"from": "2026-02-30"})
    assert bad.status_code == 400 and bad.json()["error"]["param"] == "from"
