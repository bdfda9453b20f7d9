"""`interaction.ingest_email` with real-world shaped messages, on SQLite and PostgreSQL: MIME
structures and transfer encodings, RFC 2047 headers, contact matching and creation, direction,
threading, the Message-ID no-op, mbox batches, and garbage that must be `invalid_argument`."""

from __future__ import annotations

from typing import Any

import pytest
import sqlalchemy as sa
from hypothesis import given, settings
from hypothesis import strategies as st

from activity_helpers import count, new_contact
from conftest import Caller, err, ok
from krabs.accounts import NewAccount, create_account
from krabs.engine import Engine
from krabs.mailparse import MailError, html_to_text, parse, split_mbox
from krabs.store.tables import accounts, contacts, interactions

OWN = "sales@krabs.example"

MULTIPART = """\
Return-Path: <jose@example.com>
From: =?UTF-8?B?Sm9zw6kgR2FyY8OtYQ==?= <Jose@Example.com>
To: "Sales" <sales@krabs.example>
Cc: =?iso-8859-1?q?Ren=E9_Dupont?= <rene@example.fr>
Subject: =?utf-8?q?R=C3=A9union_demain_=E2=80=94_devis?=
Date: Tue, 12 May 2026 09:30:00 +0200
Message-ID: <CAF=abc123@mail.example.com>
MIME-Version: 1.0
Content-Type: multipart/mixed; boundary="outer"

--outer
Content-Type: multipart/alternative; boundary="inner"

--inner
Content-Type: text/plain; charset=utf-8
Content-Transfer-Encoding: quoted-printable

Bonjour, =C3=A0 demain pour le devis=2E Une tr=C3=A8s longue ligne coup=
=C3=A9e en deux.
--inner
Content-Type: text/html; charset=utf-8

<p>Bonjour, <b>HTML</b> version</p>
--inner--
--outer
Content-Type: application/pdf; name="devis.pdf"
Content-Disposition: attachment; filename="=?utf-8?q?devis_=C3=A9t=C3=A9.pdf?="
Content-Transfer-Encoding: base64

JVBERi0xLjQKJcfsj6IKNSAwIG9iago8PC9MZW5ndGggNiAwIFI+PgpzdHJlYW0K
--outer--
"""

HTML_ONLY = """\
From: Newsletter <news@vendor.example>
To: sales@krabs.example
Subject: Spring offers
Date: Wed, 13 May 2026 08:00:00 -0000
Message-ID: <html-only@vendor.example>
Content-Type: text/html; charset="utf-8"

<html><head><style>p {color: red}</style><script>alert(1)</script></head>
<body><h1>Spring&nbsp;offers</h1><p>Save <b>20%</b> &amp; more</p><div>Bye</div></body></html>
"""

BASE64_LATIN1 = """\
From: =?iso-8859-1?q?Fran=E7ois?= <francois@example.fr>
To: sales@krabs.example
Subject: Facture
Date: Thu, 14 May 2026 10:00:00 +0000
Message-ID: <b64@example.fr>
Content-Type: text/plain; charset=iso-8859-1
Content-Transfer-Encoding: base64

TGEgZmFjdHVyZSBlc3QgcGF56WUsIG1lcmNpIOAgdm91cy4=
"""


def message(
    *,
    sender: str = "Ada Lovelace <ada@lovelace.dev>",
    to: str = OWN,
    cc: str | None = None,
    subject: str = "Hello",
    date: str | None = "Tue, 12 May 2026 09:30:00 +0000",
    message_id: str | None = "<m1@lovelace.dev>",
    extra: str = "",
    body: str = "How much is the engine?",
) -> str:
    headers = [f"From: {sender}", f"To: {to}", f"Subject: {subject}"]
    if cc:
        headers.append(f"Cc: {cc}")
    if date:
        headers.append(f"Date: {date}")
    if message_id:
        headers.append(f"Message-ID: {message_id}")
    if extra:
        headers.append(extra)
    return "\r\n".join(headers) + "\r\n\r\n" + body + "\r\n"


def ingest(call: Caller, raw: str, **args: Any) -> dict[str, Any]:
    result = ok(call("interaction.ingest_email", {"raw": raw, "own_addresses": [OWN], **args}))
    assert result["object"] == "email_ingest"
    [one] = result["results"]
    return dict(one)


def contact(call: Caller, contact_id: str) -> dict[str, Any]:
    return ok(call("contact.get", {"id": contact_id}))


@pytest.fixture
def other(engine: Engine) -> NewAccount:
    return create_account(engine.store, "other")


# -- parsing real-world shapes ---------------------------------------------------------------------


def test_multipart_quoted_printable_rfc2047_and_attachment(call: Caller) -> None:
    result = ingest(call, MULTIPART, create_contacts=True)
    assert result["status"] == "created" and result["error"] is None
    ix = result["interaction"]
    assert ix["kind"] == "email" and ix["direction"] == "inbound" and ix["source"] == "email"
    assert ix["subject"] == "Réunion demain — devis"
    assert ix["body"] == "Bonjour, à demain pour le devis. Une très longue ligne coupée en deux."
    assert ix["occurred_at"] == "2026-05-12T07:30:00.000000Z"
    assert ix["external_id"] == ix["thread_id"] == "<CAF=abc123@mail.example.com>"
    email = ix["attributes"]["email"]
    assert email["attachments"] == [
        {"filename": "devis été.pdf", "content_type": "application/pdf", "size": 48}
    ]
    assert "JVBERi0" not in str(ix)  # the attachment's content is never stored
    assert email["from"] == [{"name": "José García", "email": "Jose@Example.com"}]
    assert email["cc"] == [{"name": "René Dupont", "email": "rene@example.fr"}]
    # Sender and cc were created, named from the headers; the own address is no participant.
    jose_id, rene_id = result["created_contacts"]
    assert ix["participants"] == [
        {"contact_id": jose_id, "role": "from"},
        {"contact_id": rene_id, "role": "cc"},
    ]
    jose = contact(call, jose_id)
    assert jose["display_name"] == "José García"
    assert [(i["kind"], i["normalized"]) for i in jose["identities"]] == [
        ("email", "jose@example.com")
    ]
    assert contact(call, rene_id)["display_name"] == "René Dupont"
    assert result["unmatched_addresses"] == []


def test_html_only_message_becomes_text(call: Caller) -> None:
    ix = ingest(call, HTML_ONLY)["interaction"]
    assert ix["body"] == "Spring offers\n\nSave 20% & more\n\nBye"
    assert "alert" not in ix["body"] and "color" not in ix["body"]
    assert ix["occurred_at"] == "2026-05-13T08:00:00.000000Z"


def test_base64_body_in_latin1(call: Caller) -> None:
    result = ingest(call, BASE64_LATIN1, create_contacts=True)
    assert result["interaction"]["body"] == "La facture est payée, merci à vous."
    [created] = result["created_contacts"]
    assert contact(call, created)["display_name"] == "François"


def test_folded_headers_and_quoted_commas() -> None:
    mail = parse(
        'From: "Doe, John" <john@x.example>\nTo: a@b.example,\n\t"Smith, Ann" <ann@y.example>\n'
        "Subject: =?UTF-8?Q?Long_subject_with_=C3=BCmlaut?=\n =?UTF-8?Q?_and_more?=\n"
        "Message-ID:\n <folded@id>\n\nhi"
    )
    assert [(a.name, a.email, a.role) for a in mail.addresses] == [
        ("Doe, John", "john@x.example", "from"),
        (None, "a@b.example", "to"),
        ("Smith, Ann", "ann@y.example", "to"),
    ]
    assert mail.subject == "Long subject with ümlaut and more"
    assert mail.message_id == "<folded@id>"


def test_html_to_text_keeps_blocks_apart() -> None:
    assert html_to_text("<div>a</div><div>b<br>c</div>") == "a\n\nb\nc"
    assert html_to_text("<p>x &lt; y</p><!-- hidden -->") == "x < y"


def test_missing_date_means_now(call: Caller) -> None:
    ix = ingest(call, message(date=None))["interaction"]
    assert ix["occurred_at"] == ix["created_at"]
    assert ix["attributes"]["email"]["date_header"] is None


def test_unreadable_date_means_now_and_is_kept(call: Caller) -> None:
    ix = ingest(call, message(date="sometime next week"))["interaction"]
    assert ix["occurred_at"] == ix["created_at"]
    assert ix["attributes"]["email"]["date_header"] == "sometime next week"


def test_missing_message_id_gets_a_digest_and_still_deduplicates(
    call: Caller, engine: Engine, account: NewAccount
) -> None:
    raw = message(message_id=None)
    first = ingest(call, raw)
    assert first["interaction"]["external_id"].startswith("krabs-sha256:")
    again = ingest(call, raw)
    assert again["status"] == "deduplicated"
    assert again["interaction"]["id"] == first["interaction"]["id"]
    other_body = ingest(call, message(message_id=None, body="different"))
    assert other_body["status"] == "created"
    assert count(engine.store, interactions, account.account_id) == 2


# -- contacts, direction, threads ------------------------------------------------------------------


def test_ingesting_twice_is_a_no_op(call: Caller, engine: Engine, account: NewAccount) -> None:
    first = ingest(call, MULTIPART, create_contacts=True)
    n_contacts = count(engine.store, contacts, account.account_id)
    again = ok(
        call(
            "interaction.ingest_email",
            {"raw": MULTIPART, "own_addresses": [OWN], "create_contacts": True},
        )
    )
    assert (again["created"], again["deduplicated"], again["failed"]) == (0, 1, 0)
    [result] = again["results"]
    assert result["status"] == "deduplicated" and result["created_contacts"] == []
    assert result["interaction"]["id"] == first["interaction"]["id"]
    assert result["interaction"]["deduplicated"] is True
    assert count(engine.store, interactions, account.account_id) == 1
    assert count(engine.store, contacts, account.account_id) == n_contacts


def test_known_contacts_match_by_normalized_identity(call: Caller, engine: Engine) -> None:
    ada = new_contact(call, "Ada", email="ada@lovelace.dev")
    raw = message(sender=f"Sales <{OWN}>", to="ADA <ADA@Lovelace.DEV>", cc="bob@unknown.example")
    result = ingest(call, raw)
    ix = result["interaction"]
    assert ix["direction"] == "outbound"
    assert ix["participants"] == [{"contact_id": ada, "role": "to"}]
    assert result["created_contacts"] == []
    assert result["unmatched_addresses"] == ["bob@unknown.example"]
    assert ix["attributes"]["email"]["unmatched_addresses"] == ["bob@unknown.example"]


def test_direction_inbound_outbound_internal(call: Caller) -> None:
    def direction(raw: str) -> str:
        return str(ingest(call, raw)["interaction"]["direction"])

    assert direction(message(message_id="<d1@x>")) == "inbound"
    assert direction(message(message_id="<d2@x>", sender=OWN, to="ada@x.example")) == "outbound"
    team = "team@krabs.example"
    raw = message(message_id="<d3@x>", sender=OWN, to=team)
    assert ingest(call, raw, own_addresses=[OWN, team])["interaction"]["direction"] == "internal"
    # No own address known at all: everything is inbound.
    raw = message(message_id="<d4@x>", sender=OWN, to="ada@x.example")
    assert (
        ok(call("interaction.ingest_email", {"raw": raw}))["results"][0]["interaction"]["direction"]
        == "inbound"
    )


def test_own_addresses_from_account_settings(
    call: Caller, engine: Engine, account: NewAccount
) -> None:
    with engine.store.transaction() as conn:
        conn.execute(
            accounts.update()
            .where(accounts.c.id == account.account_id)
            .values(settings={"own_addresses": ["Sales@Krabs.Example", "not an address", 42]})
        )
    raw = message(sender=OWN, to="Ada <ada@lovelace.dev>")
    result = ok(call("interaction.ingest_email", {"raw": raw, "create_contacts": True}))
    ix = result["results"][0]["interaction"]
    assert ix["direction"] == "outbound"
    [ada] = result["results"][0]["created_contacts"]
    assert ix["participants"] == [{"contact_id": ada, "role": "to"}]


def test_threads_follow_references_and_in_reply_to(call: Caller) -> None:
    root = ingest(call, message(message_id="<root@x>"))["interaction"]
    assert root["thread_id"] == "<root@x>"
    reply = ingest(call, message(message_id="<r1@x>", extra="In-Reply-To: <root@x>"))
    assert reply["interaction"]["thread_id"] == "<root@x>"
    # A reply to the reply without References still lands in the root's thread.
    deeper = ingest(call, message(message_id="<r2@x>", extra="In-Reply-To: <r1@x>"))
    assert deeper["interaction"]["thread_id"] == "<root@x>"
    refs = "References: <older@x>\r\n <root@x> <r2@x>\r\nIn-Reply-To: <r2@x>"
    with_refs = ingest(call, message(message_id="<r3@x>", extra=refs))["interaction"]
    assert with_refs["thread_id"] == "<older@x>"
    assert with_refs["attributes"]["email"]["references"] == ["<older@x>", "<root@x>", "<r2@x>"]
    orphan = ingest(call, message(message_id="<o@x>", extra="In-Reply-To: <never-seen@x>"))
    assert orphan["interaction"]["thread_id"] == "<never-seen@x>"
    listed = ok(call("interaction.list", {"thread_id": "<root@x>"}))["data"]
    assert [i["external_id"] for i in listed] == ["<r2@x>", "<r1@x>", "<root@x>"]


def test_same_address_in_two_headers_creates_one_contact(call: Caller) -> None:
    raw = message(to="bob@x.example, Bob <BOB@x.example>", cc="bob@x.example")
    result = ingest(call, raw, create_contacts=True)
    ada, bob = result["created_contacts"]
    assert result["interaction"]["participants"] == [
        {"contact_id": ada, "role": "from"},
        {"contact_id": bob, "role": "to"},
        {"contact_id": bob, "role": "cc"},
    ]


def test_other_accounts_contacts_are_not_matched(call: Caller, other: NewAccount) -> None:
    new_contact(lambda op, a: call(op, a, key=other.secret), email="ada@lovelace.dev")
    result = ingest(call, message())
    assert result["interaction"]["participants"] == []
    assert result["unmatched_addresses"] == ["ada@lovelace.dev"]
    assert ok(call("interaction.list", {}, key=other.secret))["data"] == []


def test_bad_recipient_addresses_are_skipped_not_fatal(call: Caller) -> None:
    raw = message(to="undisclosed-recipients:;", cc='"x" <@@>, broken@, ok@fine.example')
    result = ingest(call, raw, create_contacts=True)
    assert result["status"] == "created"
    assert len(result["created_contacts"]) == 2  # the sender and ok@fine.example


def test_control_characters_never_reach_the_database(call: Caller) -> None:
    raw = message(
        subject="=?utf-8?q?nul=00here=07?=",
        extra="Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable",
        body="a=00b=1Bc\r\nline two",
    )
    ix = ingest(call, raw)["interaction"]
    assert ix["subject"] == "nulhere"
    assert ix["body"] == "abc\nline two"


def test_unknown_charset_falls_back_to_utf8(call: Caller) -> None:
    raw = message(extra="Content-Type: text/plain; charset=x-no-such-charset", body="café")
    assert ingest(call, raw)["interaction"]["body"] == "café"


# -- mbox ------------------------------------------------------------------------------------------


def test_mbox_batch_returns_per_message_results(
    call: Caller, engine: Engine, account: NewAccount
) -> None:
    mbox = (
        "From ada@lovelace.dev Tue May 12 09:30:00 2026\n"
        + message(message_id="<a@x>", body="first\n>From the archive")
        + "\nFrom MAILER-DAEMON Tue May 12 09:31:00 2026\n"
        + "this is not an email at all\n"
        + "\nFrom bob@x Tue May 12 09:32:00 2026\n"
        + message(sender="Bob <bob@x.example>", message_id="<b@x>")
        + "\nFrom ada@lovelace.dev Tue May 12 09:33:00 2026\n"
        + message(message_id="<a@x>")
    )
    result = ok(
        call(
            "interaction.ingest_email",
            {"mbox": mbox, "own_addresses": [OWN], "create_contacts": True},
        )
    )
    assert (result["created"], result["deduplicated"], result["failed"]) == (2, 1, 1)
    statuses = [(r["index"], r["status"]) for r in result["results"]]
    assert statuses == [(0, "created"), (1, "failed"), (2, "created"), (3, "deduplicated")]
    failed = result["results"][1]
    assert failed["interaction"] is None
    assert failed["error"]["code"] == "invalid_argument" and failed["error"]["param"] == "mbox.1"
    first = result["results"][0]["interaction"]
    assert first["body"] == "first\nFrom the archive"
    assert result["results"][3]["interaction"]["id"] == first["id"]
    assert count(engine.store, interactions, account.account_id) == 2


# -- garbage ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "param"),
    [
        ({"raw": "hello world"}, "raw"),
        ({"raw": "   "}, "raw"),
        ({"raw": "Subject: no sender\r\n\r\nbody"}, "raw"),
        ({"raw": "From: nobody at all\r\n\r\nbody"}, "raw"),
        ({"raw": "\u00ff\u00fe<<>>::\r\n\r\n"}, "raw"),
        ({"raw": "From: a@b.example\x00\r\n\r\n"}, "raw"),
        ({"raw": "x" * 1_000_001}, "raw"),
        ({"raw": 42}, "raw"),
        ({"mbox": "Subject: not an mbox\r\n\r\nbody"}, "mbox"),
        ({"raw": message(), "own_addresses": ["not an email"]}, "own_addresses.0"),
        ({"raw": message(), "own_addresses": [OWN, ""]}, "own_addresses.1"),
        ({"raw": message(), "own_addresses": "sales@krabs.example"}, "own_addresses"),
        ({"raw": message(), "store_attachments": True}, "store_attachments"),
        ({"raw": message(), "create_contacts": "yes"}, "create_contacts"),
    ],
)
def test_garbage_is_invalid_argument(
    call: Caller, engine: Engine, account: NewAccount, args: dict[str, Any], param: str
) -> None:
    e = err(call("interaction.ingest_email", args), "invalid_argument")
    assert e["param"] == param, e
    assert count(engine.store, interactions, account.account_id) == 0


_HEADERISH = st.sampled_from(
    ["From: ", "To: ", "Cc: ", "Date: ", "Subject: ", "Message-ID: ", "References: ",
     "Content-Type: multipart/mixed; boundary=b\n\n--b\n", "Content-Transfer-Encoding: base64\n",
     "=?utf-8?b?", "=?x?q?=FF", "<", ">", "@", ",", ";", ":", "\n", "\n\n", "--b--", "From x\n"]
)  # fmt: skip


def _parsed_or_refused(text: str) -> None:
    """Either a MailError, or a result whose every string is free of control characters."""
    try:
        mail = parse(text)
    except MailError:
        return
    strings = [mail.subject, mail.body, mail.message_id, mail.date_header, *mail.references]
    strings += [x for a in mail.addresses for x in (a.name, a.email)]
    strings += [a["filename"] for a in mail.attachments]
    for value in filter(None, strings):
        assert not any(ord(c) < 32 and c not in "\t\n\r" for c in value), value


@settings(max_examples=200, deadline=None)
@given(st.lists(st.one_of(_HEADERISH, st.text(max_size=20)), max_size=30))
def test_parsing_never_fails_with_anything_but_mail_error(pieces: list[str]) -> None:
    text = "".join(pieces)
    _parsed_or_refused(text)
    try:
        chunks = split_mbox(text)
    except MailError:
        return
    for chunk in chunks:
        _parsed_or_refused(chunk)


@pytest.mark.parametrize("args", [{}, {"raw": message(), "mbox": "From x\n" + message()}])
def test_exactly_one_of_raw_or_mbox(call: Caller, args: dict[str, Any]) -> None:
    e = err(call("interaction.ingest_email", args), "invalid_argument")
    assert "exactly one of raw" in e["message"]


def test_all_garbage_mbox_writes_nothing(call: Caller, engine: Engine, account: NewAccount) -> None:
    mbox = "From x Tue May 12 2026\nnot mail\n\nFrom y Tue May 12 2026\n\n"
    result = ok(call("interaction.ingest_email", {"mbox": mbox}))
    assert result["failed"] == 2 and result["created"] == 0
    with engine.store.connect(write=False) as conn:
        n = conn.execute(
            sa.select(sa.func.count())
            .select_from(contacts)
            .where(contacts.c.account_id == account.account_id)
        ).scalar_one()
    assert n == 0


def test_over_http_garbage_is_400(http: Any) -> None:
    response = http.post("/v1/interaction.ingest_email", json={"raw": "\ngarbage\n"})
    assert response.status_code == 400, response.text
    assert response.json()["error"]["param"] == "raw"
