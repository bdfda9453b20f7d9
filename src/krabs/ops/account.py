"""The account itself: its name, the default region phone numbers are read in, and free settings.
(``account.export`` writes the whole account out; it lives with the export code.)"""

from __future__ import annotations

from typing import Any, Literal

import phonenumbers
from pydantic import Field

from krabs.contract.errors import KrabsError, invalid
from krabs.contract.models import Args, Attributes, Name, Out
from krabs.contract.registry import Example, operation
from krabs.engine.uow import UnitOfWork
from krabs.store.tables import accounts

FIELDS = ("name", "default_region", "settings")


class AccountOut(Out):
    object: Literal["account"] = "account"
    id: str
    name: str
    default_region: str | None
    settings: dict[str, Any]
    created_at: str
    updated_at: str


def account_object(row: dict[str, Any]) -> dict[str, Any]:
    return {
        "object": "account",
        "id": row["id"],
        "name": row["name"],
        "default_region": row["default_region"],
        "settings": row["settings"] or {},
        "created_at": row["created_at"],
        "updated_at": row["updated_at"],
    }


class AccountUpdate(Args):
    name: Name | None = Field(None, description="The account's display name.")
    default_region: str | None = Field(
        None,
        min_length=2,
        max_length=2,
        description="ISO 3166 alpha-2 region (GB, US, FR) used to read phone numbers written "
        "without a country code; null clears it.",
    )
    settings: Attributes | None = Field(
        None, description="Free-form settings object (replaced whole; null clears)."
    )


@operation(
    "account.update",
    summary="Change the account's name, default phone region or settings.",
    input=AccountUpdate,
    output=AccountOut,
    mutates=True,
    errors=("not_found",),
    examples=(Example({"name": "Analytical Engines Ltd", "default_region": "GB"}),),
)
def update(uow: UnitOfWork, args: AccountUpdate) -> dict[str, Any]:
    """Only the fields you send change. `default_region` must be a region phone numbers exist for
    (ISO 3166 alpha-2, upper or lower case); `settings` replaces the whole object."""
    changes = args.model_dump(include=set(FIELDS), exclude_unset=True)
    if not changes:
        raise invalid("name", f"nothing to update: send at least one of {', '.join(FIELDS)}")
    if changes.get("name", "") is None:
        raise invalid("name", "name cannot be null; send a non-empty name")
    region = changes.get("default_region")
    if region is not None:
        region = changes["default_region"] = region.upper()
        if region not in phonenumbers.SUPPORTED_REGIONS:
            raise invalid(
                "default_region",
                f"{region!r} is not a region phone numbers are issued for; use an ISO 3166 "
                "alpha-2 code such as GB, US, FR or DE",
            )
    if "settings" in changes and changes["settings"] is None:
        changes["settings"] = {}
    row = uow.fetch(accounts, uow.account_id)
    if row is None:
        raise KrabsError("not_found", f"account {uow.account_id!r} no longer exists")
    if {k: row[k] for k in changes} != changes:
        row = uow.update(accounts, row, {**changes, "updated_at": uow.now})
    return account_object(row)
