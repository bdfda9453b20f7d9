"""Building blocks for operation inputs and outputs: strict argument models, bounded text types and
the list envelope every list operation shares."""

from __future__ import annotations

import datetime as dt
import json
from typing import Annotated, Any, Generic, Literal, TypeVar

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

T = TypeVar("T")


def _single_line(value: str) -> str:
    if any(ch in value for ch in "\r\n\t"):
        raise ValueError("must be a single line (no tabs or line breaks)")
    return value


class Args(BaseModel):
    """Operation arguments: unknown fields are rejected by name so an agent learns its mistake."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True, frozen=True, strict=True)


class Out(BaseModel):
    """An operation's result shape; documentation and test-time validation of what handlers return."""

    model_config = ConfigDict(extra="allow")


Name = Annotated[str, Field(min_length=1, max_length=200), AfterValidator(_single_line)]
LongName = Annotated[str, Field(min_length=1, max_length=400), AfterValidator(_single_line)]
Text = Annotated[str, Field(max_length=100_000)]


def _parses_as_iso(value: str) -> str:
    """Accept any real ISO-8601 date or date-time; hand on the stored form (fixed-width UTC)."""
    try:
        parsed = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
        if parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=dt.UTC)
        return parsed.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    except (ValueError, OverflowError):
        raise ValueError(f"{value!r} is not a real ISO-8601 date or date-time in range") from None


Timestamp = Annotated[
    str,
    AfterValidator(_parses_as_iso),
    Field(
        pattern=r"^\d{4}-\d{2}-\d{2}(T\d{2}:\d{2}(:\d{2}(\.\d{1,6})?)?(Z|[+-]\d{2}:?\d{2})?)?$",
        max_length=40,
        description="ISO-8601 date or date-time; UTC when no offset is given.",
    ),
]


def _bounded_json(value: dict[str, Any]) -> dict[str, Any]:
    if len(json.dumps(value, ensure_ascii=False).encode("utf-8")) > 64 * 1024:
        raise ValueError("must serialize to at most 64 KiB of JSON")

    def depth(v: Any) -> int:
        if isinstance(v, dict):
            return 1 + max((depth(x) for x in v.values()), default=0)
        if isinstance(v, list):
            return 1 + max((depth(x) for x in v), default=0)
        return 0

    if depth(value) > 8:
        raise ValueError("must nest at most 8 levels deep")
    return value


Attributes = Annotated[
    dict[str, Any],
    AfterValidator(_bounded_json),
    Field(description="Free-form JSON object (at most 64 KiB, nesting depth 8)."),
]


def id_field(prefix: str, description: str = "") -> Any:
    return Field(
        pattern=rf"^{prefix}_[0-9A-Za-z]{{1,40}}$",
        max_length=48,
        description=description or f"An id starting with `{prefix}_`.",
    )


class ListArgs(Args):
    limit: int = Field(20, ge=1, le=100, description="Page size, 1-100.")
    starting_after: str | None = Field(
        None, max_length=64, description="Cursor: the `next_cursor` of the previous page."
    )


class ListOf(Out, Generic[T]):
    object: Literal["list"] = "list"
    data: list[T]
    has_more: bool
    next_cursor: str | None = None


def page(rows: list[dict[str, Any]], limit: int) -> dict[str, Any]:
    """Shape ``limit + 1`` fetched rows into the list envelope (the extra row only proves ``has_more``)."""
    has_more = len(rows) > limit
    data = rows[:limit]
    return {
        "object": "list",
        "data": data,
        "has_more": has_more,
        "next_cursor": data[-1]["id"] if has_more and data else None,
    }
