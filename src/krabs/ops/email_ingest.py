"""`interaction.ingest_email`: turn raw emails (one RFC 5322 message, or an mbox of several) into
interactions, matching senders and recipients to contacts by their email identity."""

from __future__ import annotations

from typing import Annotated, Any, Literal

import sqlalchemy as sa
from pydantic import Field, model_validator

from krabs.contract.errors import KrabsError, invalid
from krabs.contract.models import Args, Name, Out
from krabs.contract.registry import Example, operation
from krabs.engine.uow import UnitOfWork
from krabs.mailparse import MailError, ParsedEmail, parse, split_mbox
from krabs.ops.contact import _create
from krabs.ops.identity import IdentityIn, Normalized, live_owners, normalize, normalize_all
from krabs.ops.interaction import RecordedOut, already_recorded, live_by_external_id, record
from krabs.store.tables import accounts

MAX_RAW = 1_000_000
MAX_MESSAGES = 500
#: How many addresses per header the interaction's attributes keep (its JSON stays small).
MAX_LISTED = 100


class IngestEmail(Args):
    raw: str | None = Field(
        None,
        min_length=1,
        max_length=MAX_RAW,
        description="One RFC 5322 message: headers, blank line, body (MIME is understood).",
    )
    mbox: str | None = Field(
        None,
        min_length=1,
        max_length=MAX_RAW,
        description="Several messages in mbox format ('From ' separator lines); send raw or mbox.",
    )
    create_contacts: bool = Field(
        False, description="Create a contact for every sender or recipient no contact owns."
    )
    own_addresses: list[Annotated[str, Field(min_length=1, max_length=320)]] = Field(
        default_factory=list,
        max_length=50,
        description="This account's own email addresses (added to the account setting "
        "`own_addresses`): they decide the direction and are never made participants.",
    )
    source: Name = Field("email", description="Stored as each interaction's `source`.")

    @model_validator(mode="after")
    def _one_input(self) -> IngestEmail:
        if (self.raw is None) == (self.mbox is None):
            raise ValueError("send exactly one of raw (one message) or mbox (several)")
        return self


class IngestResult(Out):
    index: int
    status: Literal["created", "deduplicated", "failed"]
    interaction: RecordedOut | None
    created_contacts: list[str]
    unmatched_addresses: list[str]
    error: dict[str, Any] | None


class IngestOut(Out):
    object: Literal["email_ingest"] = "email_ingest"
    created: int
    deduplicated: int
    failed: int
    results: list[IngestResult]


def _own_addresses(uow: UnitOfWork, given: list[str]) -> set[str]:
    """The normalized own addresses: the argument's (a bad one is `invalid_argument`) and those of
    the account setting ``own_addresses`` (a bad one there is ignored)."""
    own = {normalize(uow, "email", v, f"own_addresses.{n}", None) for n, v in enumerate(given)}
    settings = uow.execute(
        sa.select(accounts.c.settings).where(accounts.c.id == uow.account_id)
    ).scalar()
    configured = settings.get("own_addresses") if isinstance(settings, dict) else None
    for value in configured if isinstance(configured, list) else []:
        try:
            own.add(normalize(uow, "email", str(value)[:2048], "own_addresses", None))
        except KrabsError:
            continue
    return own


def _thread_root(uow: UnitOfWork, mail: ParsedEmail, external_id: str) -> str:
    """The root Message-ID: the first of References, else the parent's thread, else this one."""
    if mail.references:
        return mail.references[0]
    if mail.in_reply_to:
        parent = live_by_external_id(uow, mail.in_reply_to)
        return str(parent["thread_id"] or mail.in_reply_to) if parent else mail.in_reply_to
    return external_id


def _ingest(
    uow: UnitOfWork, mail: ParsedEmail, own: set[str], args: IngestEmail, index: int
) -> dict[str, Any]:
    external_id = mail.message_id or f"krabs-sha256:{mail.digest}"
    existing = live_by_external_id(uow, external_id)
    if existing is not None:
        return _result(index, "deduplicated", already_recorded(uow, existing), [], [])
    resolved: list[tuple[Normalized, str, str | None]] = []
    unmatched: list[str] = []
    for a in mail.addresses:
        try:
            [n] = normalize_all(
                uow,
                [IdentityIn(kind="email", value=a.email, source=args.source)],
                "raw",
                indexed=False,
            )
        except (KrabsError, ValueError):
            unmatched.append(a.email)
            continue
        resolved.append((n, a.role, a.name))
    owners = live_owners(uow, [("email", n.norm) for n, _, _ in resolved if n.norm not in own])
    known: dict[str, str] = {norm: row.contact_id for (_, norm), row in owners.items()}
    created: list[str] = []
    participants: list[tuple[str, str]] = []
    for n, role, name in resolved:
        if n.norm in own:
            continue
        if n.norm not in known:
            if not args.create_contacts:
                unmatched.append(n.norm)
                continue
            contact = _create(uow, {"display_name": name}, [n], owners)
            known[n.norm] = contact["id"]
            created.append(contact["id"])
        participants.append((known[n.norm], role))
    values = {
        "kind": "email",
        "direction": _direction(own, [(n.norm, role) for n, role, _ in resolved]),
        "occurred_at": mail.date or uow.now,
        "subject": mail.subject,
        "body": mail.body,
        "external_id": external_id,
        "thread_id": _thread_root(uow, mail, external_id),
        "source": args.source,
        "attributes": {"email": _headers(mail, dict.fromkeys(unmatched))},
    }
    return _result(index, "created", record(uow, values, participants), created, unmatched)


def _direction(own: set[str], addrs: list[tuple[str, str]]) -> str:
    """Outbound when an own address sent it (internal if every recipient is own too), else inbound."""
    if not any(norm in own for norm, role in addrs if role == "from"):
        return "inbound"
    recipients = [norm for norm, role in addrs if role != "from"]
    return "internal" if recipients and all(r in own for r in recipients) else "outbound"


def _headers(mail: ParsedEmail, unmatched: dict[str, None]) -> dict[str, Any]:
    def listed(role: str) -> list[dict[str, Any]]:
        found = [{"name": a.name, "email": a.email} for a in mail.addresses if a.role == role]
        return found[:MAX_LISTED]

    return {
        "message_id": mail.message_id,
        "in_reply_to": mail.in_reply_to,
        "references": mail.references,
        "from": listed("from"),
        "to": listed("to"),
        "cc": listed("cc"),
        "bcc": listed("bcc"),
        "date_header": mail.date_header,
        "attachments": mail.attachments,
        "body_truncated": mail.body_truncated,
        "unmatched_addresses": list(unmatched)[:MAX_LISTED],
    }


def _result(
    index: int,
    status: str,
    interaction: dict[str, Any] | None,
    created: list[str],
    unmatched: list[str],
    error: dict[str, Any] | None = None,
) -> dict[str, Any]:
    return {
        "index": index,
        "status": status,
        "interaction": interaction,
        "created_contacts": created,
        "unmatched_addresses": list(dict.fromkeys(unmatched))[:MAX_LISTED],
        "error": error,
    }


@operation(
    "interaction.ingest_email",
    summary="Record raw emails (one message or an mbox) as interactions, matching contacts.",
    input=IngestEmail,
    output=IngestOut,
    mutates=True,
    errors=("conflict",),
    digest_args=("raw",),
    examples=(
        Example(
            {
                "raw": "From: Ada <ada@lovelace.dev>\r\nTo: sales@example.com\r\n"
                "Subject: Pricing\r\nDate: Tue, 12 May 2026 09:30:00 +0000\r\n"
                "Message-ID: <m1@lovelace.dev>\r\n\r\nHow much is the engine?\r\n",
                "own_addresses": ["sales@example.com"],
                "create_contacts": True,
            }
        ),
    ),
)
def ingest_email(uow: UnitOfWork, args: IngestEmail) -> dict[str, Any]:
    """Parses each message (MIME, quoted-printable, base64 and RFC 2047 headers understood) and
    records it as an `email` interaction: From/To/Cc/Bcc become participants when a live contact owns
    the address (`create_contacts: true` creates the others, named from the header; else they are
    listed in `unmatched_addresses`). Own addresses (`own_addresses` plus the account setting of that
    name) set the direction (sent by one: outbound; only between them: internal; else inbound) and
    are never participants. Message-ID is the `external_id`, so ingesting a message twice is a no-op
    (`status: deduplicated`); one without a Message-ID gets `krabs-sha256:<digest of the text>`.
    `thread_id` is the root Message-ID (first of References, else the parent's thread). A missing
    Date means now. Body: the text/plain part, else the HTML part as text (100,000 chars at most).
    Attachments are listed in `attributes.email.attachments` (filename, content type, size), never
    stored. A `raw` message that cannot be read is `invalid_argument`; in an `mbox` each unreadable
    message is a `failed` result and the others are still recorded."""
    own = _own_addresses(uow, args.own_addresses)
    results: list[dict[str, Any]] = []
    if args.raw is not None:
        try:
            mail = parse(args.raw)
        except MailError as exc:
            raise invalid("raw", str(exc)) from None
        results.append(_ingest(uow, mail, own, args, 0))
    else:
        try:
            chunks = split_mbox(args.mbox or "")
        except MailError as exc:
            raise invalid("mbox", str(exc)) from None
        if len(chunks) > MAX_MESSAGES:
            raise invalid("mbox", f"an mbox may hold at most {MAX_MESSAGES} messages per call")
        for i, chunk in enumerate(chunks):
            try:
                mail = parse(chunk)
            except MailError as exc:
                error = {"code": "invalid_argument", "message": str(exc), "param": f"mbox.{i}"}
                results.append(_result(i, "failed", None, [], [], error))
                continue
            results.append(_ingest(uow, mail, own, args, i))
    return {
        "object": "email_ingest",
        **{
            s: sum(r["status"] == s for r in results) for s in ("created", "deduplicated", "failed")
        },
        "results": results,
    }
