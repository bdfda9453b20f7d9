"""One imported contact before it meets the database: fields, normalized identities, tag names and
attributes, each checked by the rules the contract's argument types apply (lengths, stages, the
50-identity cap), so a bad cell fails its own row with a report entry instead of the whole import."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, Literal

from krabs.normalize import NormalizationError, normalize_identity, tag_key

#: Contact columns an import can fill, with their length limit (the contract's Name/LongName).
NAME_FIELDS: dict[str, int] = {
    "display_name": 400,
    "given_name": 200,
    "family_name": 200,
    "company": 200,
    "title": 200,
    "owner": 200,
}
STAGES = ("lead", "prospect", "customer", "churned")
#: As contact.create: at most this many identities per contact.
MAX_IDENTITIES = 50
MAX_TAG_LENGTH = 100
MAX_ATTRIBUTES_BYTES = 64 * 1024

_LINE = re.compile(r"[^\r\n]*(?:\r\n|\r|\n)|[^\r\n]+$")
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ud800-\udfff]")

Severity = Literal["error", "warning"]


@dataclass(slots=True)
class Issue:
    """One line of an import report: where (row, column), what (a stable code) and why."""

    row: int
    column: str | None
    code: str
    message: str
    severity: Severity = "error"

    def to_dict(self) -> dict[str, Any]:
        return {
            "row": self.row,
            "column": self.column,
            "code": self.code,
            "message": self.message,
            "severity": self.severity,
        }


@dataclass(slots=True)
class Ident:
    kind: str
    value: str
    norm: str
    column: str | None


@dataclass(slots=True)
class Record:
    """A checked row (or card): ``row`` is its 1-based number in the input, for the report."""

    row: int
    fields: dict[str, Any] = field(default_factory=dict)
    identities: list[Ident] = field(default_factory=list)
    tags: list[str] = field(default_factory=list)
    attributes: dict[str, Any] = field(default_factory=dict)

    def is_empty(self) -> bool:
        return not (self.fields or self.identities or self.tags or self.attributes)


def iter_lines(text: str) -> Iterator[str]:
    """The lines of ``text`` with their endings (\\n, \\r\\n or \\r), lazily: no second copy."""
    for m in _LINE.finditer(text):
        yield m.group()


def show(value: str) -> str:
    return repr(value if len(value) <= 64 else value[:64] + "…")


class RecordBuilder:
    """Collect one record's values; every problem becomes an ``Issue`` naming its column."""

    def __init__(self, row: int, region: str | None) -> None:
        self.record = Record(row)
        self.region = region
        self.issues: list[Issue] = []
        self._seen: set[tuple[str, str]] = set()
        self._tag_keys: set[str] = set()

    def fail(self, column: str | None, code: str, message: str) -> None:
        self.issues.append(Issue(self.record.row, column, code, message))

    def _clean(self, column: str | None, value: str) -> str | None:
        bad = _CONTROL.search(value)
        if bad:
            self.fail(
                column,
                "invalid_value",
                f"contains control character U+{ord(bad.group()):04X}; remove it",
            )
            return None
        return value

    def field(self, name: str, value: str, column: str | None) -> None:
        """A contact field: whitespace (line breaks included) collapsed, length and stage checked."""
        text = self._clean(column, value)
        if text is None:
            return
        text = " ".join(text.split())
        if not text or name in self.record.fields:
            return
        if name == "stage":
            stage = text.casefold()
            if stage not in STAGES:
                self.fail(
                    column,
                    "invalid_value",
                    f"stage {show(text)} is not one of {', '.join(STAGES)}",
                )
                return
            self.record.fields["stage"] = stage
            return
        limit = NAME_FIELDS[name]
        if len(text) > limit:
            self.fail(column, "too_long", f"{name} is at most {limit} characters, got {len(text)}")
            return
        self.record.fields[name] = text

    def identity(self, kind: str, value: str, column: str | None) -> None:
        text = value.strip()
        if not text:
            return
        try:
            norm = normalize_identity(kind, text, default_region=self.region)
        except NormalizationError as exc:
            self.fail(column, "invalid_identity", str(exc))
            return
        if (kind, norm) in self._seen:
            return
        self._seen.add((kind, norm))
        self.record.identities.append(Ident(kind, text, norm, column))

    def tag(self, name: str, column: str | None) -> None:
        text = self._clean(column, name)
        if text is None:
            return
        text = " ".join(text.split())
        if not text:
            return
        key = tag_key(text)
        if len(text) > MAX_TAG_LENGTH or len(key) > MAX_TAG_LENGTH:
            self.fail(column, "too_long", f"a tag name is at most {MAX_TAG_LENGTH} characters")
            return
        if key.startswith("tg_"):
            self.fail(column, "invalid_value", f"tag {show(text)}: names cannot start with tg_")
            return
        if key not in self._tag_keys:
            self._tag_keys.add(key)
            self.record.tags.append(text)

    def attribute(self, key: str, value: Any, column: str | None) -> None:
        if isinstance(value, str) and (self._clean(column, value) is None or not value.strip()):
            return
        self.record.attributes.setdefault(key[:200], value)

    def attributes_json(self, text: str, column: str | None) -> None:
        """A JSON object cell (what contact.export_csv writes): its keys join the attributes."""
        if not text.strip():
            return
        try:
            value = json.loads(text)
        except ValueError:
            value = None
        if not isinstance(value, dict):
            self.fail(column, "invalid_value", 'attributes must be a JSON object like {"k": 1}')
            return
        for key, item in value.items():
            self.attribute(str(key), item, column)

    def finish(self) -> tuple[Record | None, list[Issue]]:
        """The record, or None when any of its values failed (the issues say which)."""
        rec = self.record
        if len(rec.identities) > MAX_IDENTITIES:
            self.fail(
                None,
                "too_many_identities",
                f"{len(rec.identities)} identities; a contact holds at most {MAX_IDENTITIES}",
            )
        if rec.attributes:
            size = len(json.dumps(rec.attributes, ensure_ascii=False).encode("utf-8"))
            if size > MAX_ATTRIBUTES_BYTES:
                self.fail(None, "too_long", "attributes serialize to more than 64 KiB of JSON")
        errors = [i for i in self.issues if i.severity == "error"]
        return (None if errors else rec), self.issues
