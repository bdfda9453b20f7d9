"""Reading contacts from CSV text, pure: lines in, checked records and report entries out, one row at
a time (nothing but the current row and a small sniffing sample is held).

The delimiter is sniffed from the first lines (``csv.Sniffer``, restricted to , ; tab and |; comma
when it cannot tell), a byte-order mark is dropped, quoted cells may span lines, and rows with more
or fewer cells than the header are reported, not fatal. Headers are mapped to contact fields by a
table of common spellings (``email``, ``E-mail``, ``Work Email``, ``First Name``, ``Organization``,
``LinkedIn``, ``Tags`` …) unless the caller's ``mapping`` says otherwise; anything unmapped lands
in ``attributes`` under its header."""

from __future__ import annotations

import csv
import itertools
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from krabs.bulk.records import NAME_FIELDS, Issue, Record, RecordBuilder, show
from krabs.normalize import IDENTITY_KINDS

#: What a column can feed, besides ``attributes.<key>``.
TARGETS: tuple[str, ...] = (
    *NAME_FIELDS,
    "stage",
    *IDENTITY_KINDS,
    "tags",
    "notes",
    "attributes",
    "ignore",
)
SAMPLE_CHARS = 4 * 1024
SAMPLE_LINES = 20
#: A cell that export_csv protected against formula injection starts with ' and one of these.
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
#: What separates several addresses in one email cell.
_EMAIL_SEPARATORS = re.compile(r"[;,\s]+")

_ALIASES: dict[str, tuple[str, ...]] = {
    "email": ("email", "e mail", "email address", "e mail address", "mail", "emails"),
    "phone": (
        "phone",
        "phone number",
        "mobile",
        "mobile phone",
        "mobile number",
        "cell",
        "cell phone",
        "cellphone",
        "telephone",
        "telephone number",
        "tel",
    ),
    "given_name": ("first name", "firstname", "given name", "first", "forename"),
    "family_name": ("last name", "lastname", "family name", "surname", "last"),
    "display_name": ("name", "full name", "fullname", "display name", "contact name", "contact"),
    "company": (
        "company",
        "company name",
        "organization",
        "organisation",
        "organization name",
        "org",
        "employer",
        "account name",
    ),
    "title": ("title", "job title", "position", "role", "job"),
    "linkedin": ("linkedin", "linkedin url", "linkedin profile", "linkedin profile url"),
    "x": ("x", "twitter", "twitter handle", "twitter url", "x handle", "twitter x", "x twitter"),
    "github": ("github", "github url", "github username", "github handle", "github profile"),
    "url": ("website", "url", "web", "homepage", "home page", "web site", "site", "blog"),
    "domain": ("domain", "company domain", "email domain"),
    "other": ("other identity",),
    "stage": ("stage", "lifecycle stage", "lifecycle"),
    "tags": ("tags", "tag", "labels", "label", "categories", "groups"),
    "owner": ("owner", "contact owner", "account owner", "record owner"),
    "notes": ("notes", "note", "comments", "comment"),
    "attributes": ("attributes",),
    "ignore": ("id", "created at", "updated at"),
}
ALIASES: dict[str, str] = {alias: target for target, names in _ALIASES.items() for alias in names}
#: Words that qualify an email or phone column ("Work Email", "Phone (Mobile)", "Secondary email").
_QUALIFIERS = frozenset(
    [
        "work",
        "personal",
        "home",
        "other",
        "business",
        "primary",
        "secondary",
        "private",
        "main",
        "alternate",
        "alt",
        "direct",
        "office",
        "mobile",
    ]
)


class CsvError(ValueError):
    """The input as a whole cannot be imported (nothing is): ``param`` names the argument to fix."""

    def __init__(self, message: str, param: str = "csv") -> None:
        super().__init__(message)
        self.param = param


def header_key(header: str) -> str:
    """Lower-case words only, trailing numbers dropped: ``E-mail 2`` → ``e mail``."""
    words = re.sub(r"[\W_]+", " ", header.casefold()).strip()
    return re.sub(r"(?:\s*\d+)+$", "", words).strip()


def auto_target(header: str) -> str:
    key = header_key(header)
    if key in ALIASES:
        return ALIASES[key]
    words = key.split()
    if len(words) > 1:
        for qualifier, rest in ((words[0], words[1:]), (words[-1], words[:-1])):
            target = ALIASES.get(" ".join(rest))
            if qualifier in _QUALIFIERS and target in ("email", "phone"):
                return target
    return "attributes." + (header.strip() or "column")


def check_target(target: str, param: str) -> str:
    if target in TARGETS or (target.startswith("attributes.") and len(target) > len("attributes.")):
        return target
    raise CsvError(
        f"{show(target)} is not a column target; use one of {', '.join(TARGETS)}, "
        "or attributes.<key>",
        param,
    )


@dataclass(frozen=True)
class Column:
    index: int
    header: str
    target: str


def map_columns(headers: list[str], mapping: dict[str, str] | None) -> list[Column]:
    """Each header's target: the caller's mapping first (by exact header, then case-insensitively),
    else the alias table, else ``attributes.<header>`` (made unique when headers repeat)."""
    mapping = mapping or {}
    by_key = {h.strip().casefold(): h for h in headers}
    explicit: dict[str, str] = {}
    for given, target in mapping.items():
        header = given if given in headers else by_key.get(given.strip().casefold())
        if header is None:
            raise CsvError(
                f"mapping names column {show(given)}, which the header row does not have; "
                f"it has: {', '.join(show(h) for h in headers[:30])}",
                f"mapping.{given}",
            )
        explicit[header] = check_target(target, f"mapping.{given}")
    columns, used = [], set()
    for n, header in enumerate(headers):
        target = explicit.get(header) or auto_target(header)
        if target.startswith("attributes."):
            base, k = target, 2
            while target in used:
                target, k = f"{base}_{k}", k + 1
        used.add(target)
        columns.append(Column(n, header, target))
    return columns


def sniff_delimiter(sample: str) -> str:
    try:
        return csv.Sniffer().sniff(sample, delimiters=",;\t|").delimiter
    except csv.Error:
        return ","


def unprotect(cell: str) -> str:
    """Undo export_csv's formula protection: ``'=1+1`` reads back as ``=1+1``."""
    if len(cell) > 1 and cell[0] == "'" and cell[1] in FORMULA_START:
        return cell[1:]
    return cell


_FIELD, _EMAIL, _IDENTITY, _TAGS, _JSON, _ATTRIBUTE, _IGNORE = range(7)


def _how(target: str) -> tuple[str, int]:
    """A column's target reduced to what ``CsvReader._record`` does with a cell."""
    if target in NAME_FIELDS or target == "stage":
        return target, _FIELD
    if target == "email":
        return target, _EMAIL
    if target in IDENTITY_KINDS:
        return target, _IDENTITY
    if target == "tags":
        return target, _TAGS
    if target == "notes":
        return "notes", _ATTRIBUTE
    if target == "attributes":
        return target, _JSON
    if target.startswith("attributes."):
        return target.removeprefix("attributes."), _ATTRIBUTE
    return target, _IGNORE


class CsvReader:
    """Iterate ``(record or None, issues)`` per data row; ``columns`` and ``delimiter`` describe how
    the input was read. The header is row 1, so the first data row is row 2."""

    def __init__(
        self,
        lines: Iterable[str],
        *,
        mapping: dict[str, str] | None = None,
        region: str | None = None,
    ) -> None:
        it = iter(lines)
        head = list(itertools.islice(it, SAMPLE_LINES))
        if head and head[0].startswith("\ufeff"):
            head[0] = head[0][1:]
        sample = "".join(head)[:SAMPLE_CHARS]
        if not sample.strip():
            raise CsvError("csv is empty; send a header row and at least one data row")
        # Whole lines only; small, because the sniffer's regexes are slow on hostile samples.
        end = max(sample.rfind("\n"), sample.rfind("\r"))
        self.delimiter = sniff_delimiter(sample[: end + 1] if end > 0 else sample)
        self._reader = csv.reader(
            itertools.chain(head, it), delimiter=self.delimiter, quotechar='"', strict=False
        )
        headers = self._header()
        self.columns = map_columns(headers, mapping)
        useful = {c.target for c in self.columns} & {
            *NAME_FIELDS,
            *IDENTITY_KINDS,
        }
        if not useful:
            raise CsvError(
                "no column maps to a name, company or identity, so no row could name a contact; "
                f"the header row has: {', '.join(show(h) for h in headers[:30])}. Pass mapping, "
                'e.g. {"Mail": "email", "Nom": "family_name"}'
            )
        self.region = region
        self.row = 1
        #: Per column: its header, its target (an attribute's key) and how a cell feeds it.
        self._plan = [(c.header, *_how(c.target)) for c in self.columns]

    def _header(self) -> list[str]:
        try:
            for cells in self._reader:
                if any(c.strip() for c in cells):
                    return [c.strip() for c in cells]
        except csv.Error as exc:
            raise CsvError(f"the header row cannot be read: {exc}") from None
        raise CsvError("csv is empty; send a header row and at least one data row")

    def __iter__(self) -> Iterator[tuple[Record | None, list[Issue]]]:
        while True:
            try:
                cells = next(self._reader)
            except StopIteration:
                return
            except csv.Error as exc:
                self.row += 1
                yield None, [Issue(self.row, None, "malformed_row", f"row cannot be read: {exc}")]
                continue
            self.row += 1
            if not any(c.strip() for c in cells):
                continue
            yield self._record(cells)

    def _record(self, cells: list[str]) -> tuple[Record | None, list[Issue]]:
        b = RecordBuilder(self.row, self.region)
        if len(cells) != len(self.columns):
            b.issues.append(
                Issue(
                    self.row,
                    None,
                    "ragged_row",
                    f"row has {len(cells)} cells, the header {len(self.columns)}: missing cells "
                    "read as empty, extra cells are ignored",
                    "warning",
                )
            )
        for (header, target, how), raw in zip(self._plan, cells, strict=False):
            if not raw or how == _IGNORE:
                continue
            cell = unprotect(raw)
            if not cell.strip():
                continue
            if how == _FIELD:
                b.field(target, cell, header)
            elif how == _EMAIL:
                for part in _EMAIL_SEPARATORS.split(cell):
                    b.identity("email", part, header)
            elif how == _IDENTITY:
                b.identity(target, cell, header)
            elif how == _TAGS:
                for name in cell.split(";" if ";" in cell else ","):
                    b.tag(name, header)
            elif how == _JSON:
                b.attributes_json(cell, header)
            else:
                b.attribute(target, cell, header)
        record, issues = b.finish()
        if record is not None and record.is_empty():
            return None, issues
        return record, issues
