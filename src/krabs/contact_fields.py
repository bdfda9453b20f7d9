"""A contact's own fields and the name it is shown by: shared by the contact operations and the bulk
importers. Kept outside ``krabs.ops``, whose import registers every operation (the importers are
imported by one of them)."""

from __future__ import annotations

from typing import Any

#: The columns a caller writes (identities and tags have their own operations).
FIELDS = (
    "display_name",
    "given_name",
    "family_name",
    "company",
    "title",
    "stage",
    "owner",
    "attributes",
)


def display_name(values: dict[str, Any], fallback: str | None = None) -> str | None:
    """The name given, else one derived from the names, the company or ``fallback`` (an identity's
    value), cut to the column's 400 characters."""
    if values.get("display_name"):
        return str(values["display_name"])
    full = " ".join(p for p in (values.get("given_name"), values.get("family_name")) if p)
    derived = full or values.get("company") or fallback
    return derived[:400] if derived else None
