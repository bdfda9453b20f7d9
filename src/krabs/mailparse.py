"""Reading untrusted RFC 5322 messages (and mbox files of them) into plain values, with the standard
library's ``email`` package. Nothing here touches the database; every failure is a ``MailError``
whose message says what is wrong, so a bad message can never surface as a server error."""

from __future__ import annotations

import datetime as dt
import hashlib
import re
from dataclasses import dataclass, field
from email import policy
from email.message import EmailMessage, Message
from email.parser import Parser
from html.parser import HTMLParser
from typing import Any

#: Characters no stored text may hold: C0 controls other than tab and line breaks, DEL and C1
#: controls (PostgreSQL refuses NUL; the rest are rejected in every argument), lone surrogates.
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ud800-\udfff]")
_MSG_ID = re.compile(r"<[^<>\s]{1,490}>")
_MBOX_FROM = re.compile(r"^From [^\n]*(?:\n|$)", re.MULTILINE)
_MBOX_QUOTED = re.compile(r"^>(>*From )", re.MULTILINE)
MAX_ATTACHMENTS = 100
MAX_BODY = 100_000


class MailError(ValueError):
    """The text is not a message that can be ingested; the message says why."""


@dataclass(frozen=True)
class Address:
    name: str | None
    email: str
    #: from, to, cc or bcc: the header it came from.
    role: str


@dataclass
class ParsedEmail:
    message_id: str | None
    in_reply_to: str | None
    references: list[str]
    #: Stored-form timestamp, or None when the Date header is missing or unreadable.
    date: str | None
    date_header: str | None
    subject: str | None
    addresses: list[Address]
    body: str | None
    body_truncated: bool
    attachments: list[dict[str, Any]] = field(default_factory=list)
    #: A stable stand-in for a missing Message-ID: a digest of the message's bytes.
    digest: str = ""


def clean(text: str) -> str:
    return _CONTROL.sub("", text)


def _one_line(text: str | None, limit: int) -> str | None:
    if text is None:
        return None
    value = " ".join(clean(str(text)).split())[:limit]
    return value or None


def _header(msg: Message, name: str) -> str | None:
    """A header's decoded (RFC 2047) value, or its raw text when the policy cannot parse it."""
    try:
        value = msg.get(name)
    except Exception:  # header parsing of untrusted input may raise anything
        value = next((v for k, v in msg.raw_items() if k.lower() == name.lower()), None)
    return None if value is None else str(value)


def _addresses(msg: Message, name: str, role: str) -> list[Address]:
    try:
        header = msg.get(name)
        found = list(getattr(header, "addresses", ()) or ())
    except Exception:  # a malformed address header is skipped, not fatal
        return []
    out = []
    for a in found:
        spec = clean(str(a.addr_spec or "")).strip()
        if "@" in spec:
            out.append(Address(_one_line(a.display_name, 400), spec[:2048], role))
    return out


def _message_ids(text: str | None) -> list[str]:
    return _MSG_ID.findall(text or "")


def _date(msg: Message) -> tuple[str | None, str | None]:
    raw = _header(msg, "Date")
    if raw is None:
        return None, None
    try:
        when = getattr(msg.get("Date"), "datetime", None)
    except Exception:
        when = None
    if not isinstance(when, dt.datetime) or when.year < 1000:
        return None, _one_line(raw, 200)
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    try:
        stored = when.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    except (OverflowError, ValueError):
        return None, _one_line(raw, 200)
    return stored, _one_line(raw, 200)


def _decoded(part: Message) -> bytes:
    try:
        payload = part.get_payload(decode=True)
    except Exception:  # broken transfer encodings decode to nothing
        return b""
    return payload if isinstance(payload, bytes) else b""


def _text_of(part: Message) -> str:
    """A text part as text. The message reached us as a (Unicode) string, so a part that is not
    base64 or quoted-printable is already text; encoded ones are bytes in their declared charset."""
    encoding = (_header(part, "Content-Transfer-Encoding") or "").strip().lower()
    payload = part.get_payload()
    if encoding not in ("base64", "quoted-printable") and isinstance(payload, str):
        return payload
    data = _decoded(part)
    charset = part.get_content_charset() or "utf-8"
    try:
        return data.decode(charset, errors="replace")
    except (LookupError, ValueError):
        return data.decode("utf-8", errors="replace")


class _TextExtractor(HTMLParser):
    """HTML to readable text: block elements become line breaks, scripts and styles vanish."""

    BLOCKS = frozenset(
        [
            "p",
            "div",
            "br",
            "tr",
            "li",
            "h1",
            "h2",
            "h3",
            "h4",
            "h5",
            "h6",
            "blockquote",
            "pre",
            "table",
            "ul",
            "ol",
            "hr",
            "section",
            "article",
        ]
    )
    HIDDEN = frozenset(("script", "style", "head", "title"))

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.hidden = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in self.HIDDEN:
            self.hidden += 1
        elif tag in self.BLOCKS:
            self.parts.append("\n")

    def handle_endtag(self, tag: str) -> None:
        if tag in self.HIDDEN:
            self.hidden = max(0, self.hidden - 1)
        elif tag in self.BLOCKS:
            self.parts.append("\n")

    def handle_data(self, data: str) -> None:
        if not self.hidden:
            self.parts.append(data)


def html_to_text(html: str) -> str:
    parser = _TextExtractor()
    parser.feed(html)
    parser.close()
    lines = (" ".join(line.split()) for line in "".join(parser.parts).splitlines())
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip()


def _is_attachment(part: Message) -> bool:
    disposition = (part.get_content_disposition() or "").lower()
    return disposition == "attachment" or (
        disposition != "inline" and part.get_filename() is not None
    )


def _attachment(part: Message, ctype: str) -> dict[str, Any]:
    """What is kept of an attachment: its name, type and size, never its content."""
    try:
        name = part.get_filename()
    except Exception:  # a broken filename parameter is just no name
        name = None
    return {
        "filename": _one_line(name, 400),
        "content_type": ctype[:200],
        "size": len(_decoded(part)),
    }


def _body_and_attachments(msg: Message) -> tuple[str | None, list[dict[str, Any]]]:
    plain: str | None = None
    html: str | None = None
    attachments: list[dict[str, Any]] = []
    for part in msg.walk():
        if part.is_multipart():
            continue
        ctype = part.get_content_type()
        if _is_attachment(part) or not ctype.startswith("text/"):
            if len(attachments) < MAX_ATTACHMENTS:
                attachments.append(_attachment(part, ctype))
            continue
        if ctype == "text/plain" and plain is None:
            plain = _text_of(part)
        elif ctype == "text/html" and html is None:
            html = _text_of(part)
    if plain is None and html is not None:
        plain = html_to_text(html)
    return (clean(plain).strip() or None) if plain is not None else None, attachments


def parse(raw: str) -> ParsedEmail:
    """One message. It must have a header block and a From address; everything else is optional."""
    text = raw.replace("\r\n", "\n")
    if not text.strip():
        raise MailError("the message is empty; send the full RFC 5322 text, headers first")
    try:
        msg = Parser(_class=EmailMessage, policy=policy.default).parsestr(text)
    except Exception as exc:  # the parser is lenient, but never trust that
        raise MailError(f"the message could not be parsed: {type(exc).__name__}") from None
    if not msg.keys():
        raise MailError(
            "no headers found: an RFC 5322 message starts with header lines such as "
            "'From: Ada <ada@example.com>' followed by a blank line and the body"
        )
    addresses = _addresses(msg, "From", "from")
    if not addresses:
        raise MailError("the message has no readable From address (e.g. 'From: ada@example.com')")
    for name, role in (("To", "to"), ("Cc", "cc"), ("Bcc", "bcc")):
        addresses += _addresses(msg, name, role)
    message_ids = _message_ids(_header(msg, "Message-ID"))
    replies = _message_ids(_header(msg, "In-Reply-To"))
    date, date_header = _date(msg)
    body, attachments = _body_and_attachments(msg)
    truncated = body is not None and len(body) > MAX_BODY
    return ParsedEmail(
        message_id=message_ids[0] if message_ids else None,
        in_reply_to=replies[0] if replies else None,
        references=_message_ids(_header(msg, "References"))[:100],
        date=date,
        date_header=date_header,
        subject=_one_line(_header(msg, "Subject"), 1000),
        addresses=addresses,
        body=body[:MAX_BODY] if body is not None else None,
        body_truncated=truncated,
        attachments=attachments,
        digest=hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest(),
    )


def split_mbox(text: str) -> list[str]:
    """The messages of an mbox file: each starts at a 'From ' line at the top or after a blank line
    (the line itself is dropped); '>From ' lines are unquoted (mboxrd)."""
    text = text.replace("\r\n", "\n")
    if not text.startswith("From "):
        raise MailError("an mbox must start with a 'From ' separator line")
    starts = [m.start() for m in _MBOX_FROM.finditer(text)]
    starts = [s for s in starts if s == 0 or text[s - 2 : s] == "\n\n"]
    out = []
    for i, start in enumerate(starts):
        end = starts[i + 1] if i + 1 < len(starts) else len(text)
        chunk = text[start:end]
        chunk = chunk.split("\n", 1)[1] if "\n" in chunk else ""
        out.append(_MBOX_QUOTED.sub(r"\1", chunk))
    return out
