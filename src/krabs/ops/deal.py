"""Deals: money in the pipeline. Stage comes from the business profile's pipeline; the terminal
stages ``won`` and ``lost`` close the deal. Every write that moves its stage, status, money or
recurrence appends a ``deal_changes`` row: the history the funnel and MRR are computed from."""

from __future__ import annotations

from typing import Any, Literal

import sqlalchemy as sa
from pydantic import Field

from krabs.contract.errors import invalid
from krabs.contract.ids import new_id
from krabs.contract.models import (
    Args,
    Attributes,
    ListArgs,
    ListOf,
    LongName,
    Name,
    Out,
    Timestamp,
    id_field,
    page,
)
from krabs.contract.registry import Example, operation
from krabs.engine.uow import UnitOfWork
from krabs.finance.types import Amount, Currency, Date
from krabs.ops.business_profile import TERMINAL, check_channel, check_stage, load_profile
from krabs.ops.common import (
    TAG_FILTER,
    check_contact,
    live_row,
    newest_first,
    tags_of,
    where_tagged,
)
from krabs.ops.identity import RemovedOut
from krabs.store.tables import deal_changes, deals

Interval = Literal["none", "month", "year"]
Status = Literal["open", "won", "lost"]
FIELDS = (
    "title",
    "contact_id",
    "amount",
    "currency",
    "stage",
    "source_channel",
    "recurring_interval",
    "expected_close_date",
    "owner",
    "attributes",
)
#: What a history row records; a write changing any of these appends one.
TRACKED = ("stage", "status", "amount", "currency", "recurring_interval")


def optional_id(prefix: str, description: str) -> Any:
    """An optional id argument (``id_field`` makes a required one)."""
    return Field(
        None, pattern=rf"^{prefix}_[0-9A-Za-z]{{1,40}}$", max_length=48, description=description
    )


StageName = Field(None, min_length=1, max_length=80, description="A stage of the pipeline.")


class DealFields(Args):
    contact_id: str | None = optional_id("ct", "The contact the deal is with (a live contact).")
    currency: Currency | None = Field(
        None, description="ISO 4217; defaults to the business profile's currency."
    )
    stage: str | None = StageName
    source_channel: str | None = Field(
        None, max_length=80, description="Marketing channel it came from (one of the profile's)."
    )
    expected_close_date: Date | None = None
    closed_at: Timestamp | None = Field(
        None, description="When it was won or lost (only with a terminal stage); default now."
    )
    effective_at: Timestamp | None = Field(
        None,
        description="When this stage or money change happened, if you record it late (not in the "
        "future, not before the deal's last change); the funnel and MRR use it. Default: "
        "closed_at if given, else now.",
    )
    owner: Name | None = Field(None, description="Who works the deal (a person or agent).")
    attributes: Attributes | None = None


class DealCreate(DealFields):
    title: LongName
    amount: Amount = 0
    recurring_interval: Interval = Field(
        "none", description="none (one-off), month or year: recurring deals make MRR once won."
    )


class DealOut(Out):
    object: Literal["deal"] = "deal"
    id: str
    title: str
    contact_id: str | None
    amount: int
    currency: str
    stage: str
    status: str
    source_channel: str | None
    recurring_interval: str
    expected_close_date: str | None
    closed_at: str | None
    owner: str | None
    attributes: dict[str, Any]
    tags: list[dict[str, Any]]
    created_at: str
    updated_at: str


def deal_object(row: dict[str, Any], tags: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "object": "deal",
        "id": row["id"],
        **{f: row[f] for f in FIELDS},
        "attributes": row["attributes"] or {},
        "status": row["status"],
        "closed_at": row["closed_at"],
        "tags": tags,
        "created_at": row["created_at"],
        "updated_at": row["updated_at"],
    }


def load(uow: UnitOfWork, deal_id: str) -> dict[str, Any]:
    row = live_row(uow, deals, deal_id, "deal")
    return deal_object(row, tags_of(uow, [deal_id])[deal_id])


def status_of(stage: str) -> str:
    return stage if stage in TERMINAL else "open"


def _last_change_at(uow: UnitOfWork, deal_id: str) -> str | None:
    return uow.execute(
        sa.select(sa.func.max(deal_changes.c.at)).where(
            deal_changes.c.account_id == uow.account_id, deal_changes.c.deal_id == deal_id
        )
    ).scalar()


def _record(uow: UnitOfWork, row: dict[str, Any], at: str, from_stage: str | None) -> None:
    uow.insert(
        deal_changes,
        {
            "id": new_id("deal_change"),
            "deal_id": row["id"],
            "at": at,
            "from_stage": from_stage,
            **{f: row[f] for f in TRACKED},
            "deleted": row["deleted_at"] is not None,
        },
    )


def _when(uow: UnitOfWork, args: DealFields, after: str | None) -> str:
    """The time a change takes effect: explicit, else ``closed_at``, else now; never in the
    future, never before the deal's previous change."""
    at = args.effective_at or args.closed_at or uow.now
    param = "effective_at" if args.effective_at else "closed_at"
    if at > uow.now:
        raise invalid(param, f"{param} {at} is in the future; send a time up to now ({uow.now})")
    if after is not None and at < after:
        raise invalid(
            param,
            f"{param} {at} is before this deal's last recorded change ({after}); history is "
            "append-only, send a time at or after it",
        )
    return at


def _closing(args: DealFields, old: dict[str, Any] | None, stage: str, at: str) -> dict[str, Any]:
    """Status and ``closed_at`` for the (new) stage: entering won/lost closes at ``closed_at`` or
    the change's time; leaving them reopens."""
    status = status_of(stage)
    if status == "open":
        if args.closed_at is not None:
            raise invalid(
                "closed_at",
                f"closed_at only applies to the terminal stages won and lost, not {stage!r}",
            )
        return {"status": status, "closed_at": None}
    if old is not None and old["status"] == status and args.closed_at is None:
        return {"status": status, "closed_at": old["closed_at"]}
    return {"status": status, "closed_at": args.closed_at or at}


def _check(uow: UnitOfWork, profile: dict[str, Any], fields: dict[str, Any]) -> None:
    if fields.get("stage") is not None:
        check_stage(profile, fields["stage"])
    check_channel(profile, fields.get("source_channel"), "source_channel")
    check_contact(uow, fields.get("contact_id"))


@operation(
    "deal.create",
    summary="Create a deal in the pipeline.",
    input=DealCreate,
    output=DealOut,
    mutates=True,
    errors=("not_found",),
    examples=(
        Example(
            {
                "title": "Analytical Engines annual plan",
                "contact_id": "ct_01HG7Z4X9Q8M2N7P3R5T6V8W",
                "amount": 1200000,
                "currency": "EUR",
                "stage": "proposal",
                "recurring_interval": "year",
            }
        ),
    ),
)
def create(uow: UnitOfWork, args: DealCreate) -> dict[str, Any]:
    """Amounts are integer minor units (cents). `stage` defaults to the pipeline's first stage and
    must be one of the business profile's stages; `won`/`lost` close the deal (`closed_at` = now or
    the one you send). `currency` defaults to the profile's. `contact_id` must be a live contact."""
    profile = load_profile(uow)
    fields = args.model_dump(include=set(FIELDS))
    if fields["stage"] is None:
        fields["stage"] = next(s for s in profile["pipeline_stages"] if s not in TERMINAL)
    fields["currency"] = fields["currency"] or profile["currency"]
    _check(uow, profile, fields)
    at = _when(uow, args, None)
    row = uow.insert(
        deals,
        {
            "id": new_id("deal"),
            **fields,
            **_closing(args, None, fields["stage"], at),
            "attributes": fields["attributes"] or {},
            "created_at": uow.now,
            "updated_at": uow.now,
            "deleted_at": None,
        },
    )
    _record(uow, row, at, None)
    return deal_object(row, [])


class DealGet(Args):
    id: str = id_field("dl", "The deal id.")


@operation(
    "deal.get",
    summary="Fetch one deal.",
    input=DealGet,
    output=DealOut,
    mutates=False,
    errors=("not_found",),
    examples=(Example({"id": "dl_01HG7Z4X9Q8M2N7P3R5T6V8W"}),),
)
def get(uow: UnitOfWork, args: DealGet) -> dict[str, Any]:
    """Returns the deal with its tags; a deleted deal is `not_found`."""
    return load(uow, args.id)


class DealList(ListArgs):
    stage: str | None = StageName
    status: Status | None = None
    contact_id: str | None = optional_id("ct", "Only deals with this contact.")
    source_channel: str | None = Field(None, max_length=80)
    currency: Currency | None = None
    tag: str | None = TAG_FILTER
    closed_since: Timestamp | None = Field(None, description="Closed at or after this.")
    closed_until: Timestamp | None = Field(None, description="Closed before this.")


@operation(
    "deal.list",
    summary="List deals, newest first, by stage, status, contact, channel, tag or close time.",
    input=DealList,
    output=ListOf[DealOut],
    mutates=False,
    errors=("not_found",),
    examples=(Example({"status": "open", "limit": 20}), Example({"stage": "proposal"})),
)
def list_(uow: UnitOfWork, args: DealList) -> dict[str, Any]:
    """Newest first. Filters combine; `closed_since`/`closed_until` keep won or lost deals closed in
    that half-open interval. An unknown `tag` is `not_found`."""
    d = deals
    query = sa.select(d).where(d.c.account_id == uow.account_id, d.c.deleted_at.is_(None))
    for name in ("stage", "status", "contact_id", "source_channel", "currency"):
        if getattr(args, name) is not None:
            query = query.where(d.c[name] == getattr(args, name))
    if args.tag:
        query = query.where(where_tagged(uow, d, args.tag))
    if args.closed_since:
        query = query.where(d.c.closed_at >= args.closed_since)
    if args.closed_until:
        query = query.where(d.c.closed_at < args.closed_until)
    rows = newest_first(uow, query, d, args.starting_after, args.limit)
    tags = tags_of(uow, [r["id"] for r in rows[: args.limit]])
    return page([deal_object(r, tags.get(r["id"], [])) for r in rows], args.limit)


class DealUpdate(DealFields):
    id: str = id_field("dl", "The deal to update.")
    title: LongName | None = None
    amount: Amount | None = None
    recurring_interval: Interval | None = None


@operation(
    "deal.update",
    summary="Change a deal's fields or move it through the pipeline; omitted fields stay.",
    input=DealUpdate,
    output=DealOut,
    mutates=True,
    errors=("not_found",),
    examples=(
        Example({"id": "dl_01HG7Z4X9Q8M2N7P3R5T6V8W", "stage": "won"}),
        Example({"id": "dl_01HG7Z4X9Q8M2N7P3R5T6V8W", "amount": 150000}),
    ),
)
def update(uow: UnitOfWork, args: DealUpdate) -> dict[str, Any]:
    """Only the fields you send change; null clears contact, channel, dates, owner or attributes.
    Moving to `won`/`lost` closes the deal (at `closed_at` or now); moving out of them reopens it.
    To record a move late, send `effective_at` (or `closed_at`) with it: history stays in order."""
    changes = args.model_dump(include=set(FIELDS), exclude_unset=True)
    extra = {"closed_at", "effective_at"} & args.model_fields_set
    if not changes and not extra:
        raise invalid("id", f"nothing to update: send at least one of {', '.join(FIELDS)}")
    for required in ("title", "amount", "currency", "stage", "recurring_interval"):
        if required in changes and changes[required] is None:
            raise invalid(required, f"{required} cannot be null; send a value")
    if "attributes" in changes and changes["attributes"] is None:
        changes["attributes"] = {}
    row = live_row(uow, deals, args.id, "deal")
    profile = load_profile(uow)
    _check(uow, profile, changes)
    at = _when(uow, args, None)
    changes.update(_closing(args, row, changes.get("stage", row["stage"]), at))
    moved = any({**row, **changes}[f] != row[f] for f in TRACKED)
    if moved:
        _when(uow, args, _last_change_at(uow, args.id))
    elif args.effective_at is not None:
        raise invalid(
            "effective_at",
            "effective_at dates a change of stage, amount, currency or recurring_interval; "
            "send one of those with it",
        )
    if {k: row[k] for k in changes} == changes:
        return load(uow, args.id)
    after = uow.update(deals, row, {**changes, "updated_at": uow.now})
    if moved:
        _record(uow, after, at, row["stage"])
    return load(uow, args.id)


class DealDelete(Args):
    id: str = id_field("dl", "The deal to delete.")


@operation(
    "deal.delete",
    summary="Delete a deal (soft, undoable for 24 h).",
    input=DealDelete,
    output=RemovedOut,
    mutates=True,
    destructive=True,
    errors=("not_found",),
    examples=(Example({"id": "dl_01HG7Z4X9Q8M2N7P3R5T6V8W"}),),
)
def delete(uow: UnitOfWork, args: DealDelete) -> dict[str, Any]:
    """Soft-deletes the deal; from now on it leaves the pipeline and its MRR ends (history keeps it).
    Returns an `undo_token`; `action.undo` restores it and removes the history entry."""
    row = live_row(uow, deals, args.id, "deal")
    after = uow.update(deals, row, {"deleted_at": uow.now, "updated_at": uow.now})
    _record(uow, after, uow.now, row["stage"])
    return {"id": args.id, "deleted": True}
