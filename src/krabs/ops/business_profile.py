"""The business profile: one per account, the frame every money figure is read in (currency,
timezone, pipeline, channels, what counts as acquisition spend, targets)."""

from __future__ import annotations

import copy
from typing import Annotated, Any, Literal
from zoneinfo import available_timezones

import sqlalchemy as sa
from pydantic import Field

from krabs.contract.errors import KrabsError, invalid
from krabs.contract.ids import new_id
from krabs.contract.models import Args, Name, Out
from krabs.contract.registry import Example, operation
from krabs.engine.uow import UnitOfWork
from krabs.finance.types import Amount, Currency, Date
from krabs.store.tables import business_profiles, deals

#: Stage, channel and category names: lower-case slugs, so "Ads" and "ads" never split a figure.
Slug = Annotated[
    str,
    Field(
        pattern=r"^[a-z0-9][a-z0-9_.\-]{0,79}$",
        description="Lower-case letters, digits, `_`, `.` or `-` (at most 80).",
    ),
]
TERMINAL = ("won", "lost")
DEFAULTS: dict[str, Any] = {
    "company": None,
    "currency": "USD",
    "timezone": "UTC",
    "fiscal_year_start": 1,
    "kickoff_date": None,
    "pipeline_stages": ["lead", "qualified", "proposal", "won", "lost"],
    "marketing_channels": [],
    "acquisition_categories": ["advertising", "marketing"],
    "attribution_window_days": 90,
    "targets": {"target_roas": None, "target_cac": {}},
}
FIELDS = tuple(DEFAULTS)


class Targets(Args):
    target_roas: str | None = Field(
        None,
        pattern=r"^\d{1,6}(\.\d{1,4})?$",
        description='Revenue per unit of acquisition spend to aim for, a decimal string ("3.5").',
    )
    target_cac: dict[Currency, Amount] = Field(
        default_factory=dict,
        max_length=50,
        description='Highest acceptable CAC per currency, minor units: {"EUR": 25000}.',
    )


class ProfileSet(Args):
    company: Name | None = None
    currency: Currency | None = Field(None, description="Default currency of deals (ISO 4217).")
    timezone: str | None = Field(
        None, max_length=64, description="IANA zone (Europe/Paris); periods are local days."
    )
    fiscal_year_start: int | None = Field(None, ge=1, le=12, description="Month, 1-12.")
    kickoff_date: Date | None = Field(None, description="When the business started tracking.")
    pipeline_stages: list[Slug] | None = Field(
        None,
        min_length=3,
        max_length=30,
        description="Ordered, unique deal stages; must include the terminal `won` and `lost`.",
    )
    marketing_channels: list[Slug] | None = Field(
        None,
        max_length=100,
        description="Unique channel names; when non-empty, deals and expenses must use one of them.",
    )
    acquisition_categories: list[Slug] | None = Field(
        None,
        max_length=100,
        description="Expense categories that count as acquisition spend (CAC).",
    )
    attribution_window_days: int | None = Field(
        None,
        ge=0,
        le=3650,
        description="A won deal's revenue is credited to its channel if won within this many days.",
    )
    targets: Targets | None = None


class ProfileOut(Out):
    object: Literal["business_profile"] = "business_profile"
    id: str | None
    company: str | None
    currency: str
    timezone: str
    fiscal_year_start: int
    kickoff_date: str | None
    pipeline_stages: list[str]
    marketing_channels: list[str]
    acquisition_categories: list[str]
    attribution_window_days: int
    targets: dict[str, Any]
    created_at: str | None
    updated_at: str | None


def _row(uow: UnitOfWork) -> dict[str, Any] | None:
    found = uow.execute(
        sa.select(business_profiles).where(business_profiles.c.account_id == uow.account_id)
    ).first()
    return dict(found._mapping) if found is not None else None


def _merged(data: dict[str, Any] | None) -> dict[str, Any]:
    return {**copy.deepcopy(DEFAULTS), **{k: v for k, v in (data or {}).items() if k in DEFAULTS}}


def load_profile(uow: UnitOfWork) -> dict[str, Any]:
    """The account's profile fields, defaults filled in (what deals, expenses and finance read)."""
    row = _row(uow)
    return _merged(row["data"] if row else None)


def profile_object(row: dict[str, Any] | None) -> dict[str, Any]:
    return {
        "object": "business_profile",
        "id": row["id"] if row else None,
        **_merged(row["data"] if row else None),
        "created_at": row["created_at"] if row else None,
        "updated_at": row["updated_at"] if row else None,
    }


def check_stage(profile: dict[str, Any], stage: str, param: str = "stage") -> None:
    if stage not in profile["pipeline_stages"]:
        raise invalid(
            param,
            f"stage {stage[:80]!r} is not in the pipeline; stage must be one of "
            f"{', '.join(profile['pipeline_stages'])} (see businessProfile.get)",
        )


def check_channel(profile: dict[str, Any], channel: str | None, param: str) -> None:
    """When the profile lists channels, a channel must be one of them."""
    listed = profile["marketing_channels"]
    if channel is not None and listed and channel not in listed:
        raise invalid(
            param,
            f"channel {channel!r} is not a marketing channel of this business; use one of "
            f"{', '.join(listed)} or add it with businessProfile.set",
        )


def _unique(values: list[str], param: str) -> None:
    dupes = sorted({v for v in values if values.count(v) > 1})
    if dupes:
        raise invalid(param, f"{param} must not repeat names; repeated: {', '.join(dupes)}")


def _validate(uow: UnitOfWork, data: dict[str, Any], given: set[str]) -> None:
    if data["timezone"] not in available_timezones():
        raise invalid(
            "timezone",
            f"{data['timezone'][:64]!r} is not an IANA time zone; use a name like UTC, "
            "Europe/Paris or America/New_York",
        )
    stages = data["pipeline_stages"]
    for name in ("pipeline_stages", "marketing_channels", "acquisition_categories"):
        _unique(data[name], name)
    missing = [s for s in TERMINAL if s not in stages]
    if missing:
        raise invalid(
            "pipeline_stages",
            f"pipeline_stages must include the terminal stages won and lost (missing "
            f"{', '.join(missing)}), e.g. lead, qualified, proposal, won, lost",
        )
    if "pipeline_stages" in given:
        stranded = uow.execute(
            sa.select(deals.c.stage, sa.func.count().label("n"))
            .where(
                deals.c.account_id == uow.account_id,
                deals.c.deleted_at.is_(None),
                deals.c.stage.not_in(stages),
            )
            .group_by(deals.c.stage)
            .order_by(deals.c.stage)
        ).all()
        if stranded:
            listed = ", ".join(f"{r.stage} ({r.n} deal(s))" for r in stranded)
            raise KrabsError(
                "conflict",
                f"live deals are in stages the new pipeline drops: {listed}; keep those stages "
                "or move the deals with deal.update first",
                param="pipeline_stages",
            )


@operation(
    "businessProfile.get",
    summary="The account's business profile (defaults until it is set).",
    input=Args,
    output=ProfileOut,
    mutates=False,
    examples=(Example({}),),
)
def get(uow: UnitOfWork, args: Args) -> dict[str, Any]:
    """Returns the profile; before any `businessProfile.set` it is the defaults (USD, UTC, pipeline
    lead, qualified, proposal, won, lost) with `id` null."""
    return profile_object(_row(uow))


@operation(
    "businessProfile.set",
    summary="Set fields of the business profile; omitted fields keep their value.",
    input=ProfileSet,
    output=ProfileOut,
    mutates=True,
    errors=("conflict",),
    examples=(
        Example(
            {
                "company": "Analytical Engines",
                "currency": "EUR",
                "timezone": "Europe/London",
                "pipeline_stages": ["lead", "demo", "proposal", "won", "lost"],
                "marketing_channels": ["google_ads", "linkedin", "referral"],
                "acquisition_categories": ["advertising"],
                "targets": {"target_roas": "3.0", "target_cac": {"EUR": 25000}},
            }
        ),
    ),
)
def set_(uow: UnitOfWork, args: ProfileSet) -> dict[str, Any]:
    """Merge semantics: each field you send replaces that field whole (a list replaces the list;
    `targets` replaces both targets); fields you omit keep their value; null resets a field to its
    default. The pipeline must be unique names including `won` and `lost`; dropping a stage that live
    deals are in is a `conflict` (move them first). Timezones are IANA names, currencies ISO 4217."""
    given = args.model_dump(include=set(FIELDS), exclude_unset=True)
    row = _row(uow)
    data = _merged(row["data"] if row else None)
    for name, value in given.items():
        data[name] = copy.deepcopy(DEFAULTS[name]) if value is None else value
    _validate(uow, data, set(given))
    if row is None:
        row = uow.insert(
            business_profiles,
            {
                "id": new_id("business_profile"),
                "data": data,
                "created_at": uow.now,
                "updated_at": uow.now,
            },
        )
    elif data != row["data"]:
        row = uow.update(business_profiles, row, {"data": data, "updated_at": uow.now})
    return profile_object(row)
