"""Reading contacts from vCard text (3.0 and 4.0) with ``vobject``, pure and card by card: the text
is cut at BEGIN:VCARD / END:VCARD lines first, so one malformed card is reported and the others
still import. Photos and other binary properties are skipped."""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from typing import Any
from urllib.parse import urlsplit

import vobject

from krabs.bulk.records import MAX_IDENTITIES, Issue, Record, RecordBuilder

_SOCIAL = {
    "linkedin": "linkedin",
    "twitter": "x",
    "x": "x",
    "github": "github",
}
_SITES = {
    "linkedin.com": "linkedin",
    "twitter.com": "x",
    "x.com": "x",
    "github.com": "github",
}


#: Binary properties, dropped before parsing: never imported, often large, a bad one is no reason
#: to refuse the card.
_BINARY = re.compile(r"(?:[\w-]+\.)?(?:PHOTO|LOGO|SOUND|KEY)[;:]", re.IGNORECASE)


def split_cards(lines: Iterable[str]) -> Iterator[tuple[int, str | None]]:
    """``(card number, card text)`` per BEGIN:VCARD…END:VCARD block, binary properties (PHOTO,
    LOGO, SOUND, KEY) removed; text None for a card that never ends. Text between cards is
    ignored."""
    n, current, skipping = 0, None, False
    for line in lines:
        if skipping and line[:1] in (" ", "\t"):
            continue  # a folded continuation of the dropped property
        skipping = _BINARY.match(line) is not None
        if skipping:
            continue
        tag = line.strip().upper()
        if tag == "BEGIN:VCARD":
            if current is not None:
                yield n, None
            n += 1
            current = [line]
        elif current is not None:
            current.append(line)
            if tag == "END:VCARD":
                yield n, "".join(current)
                current = None
    if current is not None:
        yield n, None


def _kind_of_url(url: str) -> str:
    host = (urlsplit(url if "://" in url else "https://" + url).hostname or "").lower()
    host = host.removeprefix("www.")
    for site, kind in _SITES.items():
        if host == site or host.endswith("." + site):
            return kind
    return "url"


def _text(value: Any) -> str:
    if isinstance(value, list):
        return ";".join(str(v) for v in value)
    return value if isinstance(value, str) else ""


def _lines(card: Any, name: str) -> list[Any]:
    return list(card.contents.get(name, []))


def _identities(card: Any) -> list[tuple[str, str, str]]:
    """``(kind, value, property)`` for every identity-bearing property of the card."""
    out: list[tuple[str, str, str]] = []
    for line in _lines(card, "email"):
        out.append(("email", _text(line.value).removeprefix("mailto:"), "EMAIL"))
    for line in _lines(card, "tel"):
        value = _text(line.value)
        out.append(("phone", value[4:] if value.lower().startswith("tel:") else value, "TEL"))
    for line in _lines(card, "url"):
        value = _text(line.value)
        out.append((_kind_of_url(value), value, "URL"))
    for line in _lines(card, "x-socialprofile"):
        value = _text(line.value)
        types = [t.lower() for t in line.params.get("TYPE", [])]
        kind = next((_SOCIAL[t] for t in types if t in _SOCIAL), None) or _kind_of_url(value)
        out.append((kind, value, "X-SOCIALPROFILE"))
    return [i for i in out if i[1].strip()]


def card_record(number: int, card: Any, region: str | None) -> tuple[Record | None, list[Issue]]:
    b = RecordBuilder(number, region)
    idents = _identities(card)
    distinct = {(k, v.strip().casefold()) for k, v, _ in idents}
    if len(distinct) > MAX_IDENTITIES:
        b.fail(
            None,
            "too_many_identities",
            f"card has {len(distinct)} emails, phones and profiles; a contact holds at most "
            f"{MAX_IDENTITIES}",
        )
        return None, b.issues
    for line in _lines(card, "fn")[:1]:
        b.field("display_name", _text(line.value), "FN")
    for line in _lines(card, "n")[:1]:
        value = line.value
        if isinstance(value, str):
            family, _, rest = value.partition(";")
            given = rest.partition(";")[0]
        else:
            family, given = _text(value.family), _text(value.given)
        b.field("given_name", given.replace(";", " "), "N")
        b.field("family_name", family.replace(";", " "), "N")
    for line in _lines(card, "org")[:1]:
        value = line.value
        org = value[0] if isinstance(value, list) and value else _text(value)
        b.field("company", str(org), "ORG")
    for line in _lines(card, "title")[:1]:
        b.field("title", _text(line.value), "TITLE")
    for kind, value, prop in idents:
        b.identity(kind, value, prop)
    notes = [_text(line.value) for line in _lines(card, "note")]
    if any(n.strip() for n in notes):
        b.attribute("notes", "\n".join(n for n in notes if n.strip()), "NOTE")
    for line in _lines(card, "categories"):
        names = line.value if isinstance(line.value, list) else _text(line.value).split(",")
        for name in names:
            b.tag(str(name), "CATEGORIES")
    record, issues = b.finish()
    if record is not None and record.is_empty():
        b.fail(None, "empty_card", "the card has no name, organization or identity")
        return None, b.issues
    return record, issues


def read_cards(
    lines: Iterable[str], region: str | None
) -> Iterator[tuple[Record | None, list[Issue]]]:
    """``(record or None, issues)`` per card, in order; the card number is the record's row."""
    for number, text in split_cards(lines):
        if text is None:
            issue = Issue(number, None, "malformed_card", "card has BEGIN:VCARD but no END:VCARD")
            yield None, [issue]
            continue
        try:
            card = vobject.readOne(text, validate=False)
        except Exception as exc:  # vobject raises many types on bad input; all mean "malformed"
            message = " ".join(str(exc).split())[:300] or type(exc).__name__
            yield None, [Issue(number, None, "malformed_card", f"card cannot be parsed: {message}")]
            continue
        yield card_record(number, card, region)
