"""Audit payloads sealed per data subject, so erasing a contact is destroying a key.

An action's payload (arguments, result, row images) is kept outside its hashed record, encrypted
with AES-GCM under the data key of every contact it touched (several: a key derived from all of
them, so destroying any one makes it unreadable), or under the account's own key when it touched no
contact (deals, tasks, keys). The record holds a *salted commitment* instead of a plain digest:
HMAC-SHA256 keyed with 16 random bytes that are stored only inside the ciphertext, so once the key
and ciphertext are gone nothing can test a guessed email against the record.

A payload has two sealed parts: the *main* part (arguments, result, after-images, and the
commitment of the undo part) whose commitment is the record's ``payload_digest``, and the *undo*
part (the before-images undo needs), which the retention sweep drops after 24 h without breaking
verification. Payloads written before sealing (plain JSON whose SHA-256 is the digest) still read and
verify."""

from __future__ import annotations

import base64
import binascii
import hmac
import json
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from hashlib import sha256
from typing import Any

import sqlalchemy as sa
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from krabs.store.prepared import Prepared
from krabs.store.tables import audit_data_keys

#: A sealed part: this prefix, then base64 of nonce (12 bytes) and AES-GCM ciphertext.
PREFIX = "k1."
SALT = 16
NONCE = 12

_ONE_KEY = Prepared(
    sa.select(audit_data_keys.c.key).where(
        audit_data_keys.c.account_id == sa.bindparam("acct"),
        audit_data_keys.c.subject_id == sa.bindparam("subject"),
    )
)
_KEY_COLUMNS = ("account_id", "subject_id", "key", "created_at")
_INSERT_KEY = {
    "sqlite": Prepared(
        sqlite_insert(audit_data_keys).on_conflict_do_nothing().returning(audit_data_keys.c.key),
        column_keys=_KEY_COLUMNS,
    ),
    "postgresql": Prepared(
        pg_insert(audit_data_keys).on_conflict_do_nothing().returning(audit_data_keys.c.key),
        column_keys=_KEY_COLUMNS,
    ),
}


class Unreadable(Exception):
    """A sealed part that does not open (key gone, ciphertext or commitment altered)."""


@dataclass(frozen=True)
class Sealed:
    digest: str
    body: str
    undo: str
    subjects: str
    result_digest: str
    #: The result as JSON, encoded once here and reused (the stored idempotent response).
    result_bytes: bytes


def subjects_of(
    changes: Iterable[Mapping[str, Any]], account_id: str
) -> tuple[list[str], set[str]]:
    """The contacts an action touched (its contact rows and every row image naming a contact), or
    the account itself when none; and those of them it created."""
    found: dict[str, None] = {}
    created: set[str] = set()
    for ch in changes:
        if ch.get("table") == "contacts":
            found[str(ch["id"])] = None
            if ch.get("before") is None and not ch.get("compact"):
                created.add(str(ch["id"]))
        for image in (ch.get("before"), ch.get("after")):
            if isinstance(image, dict) and isinstance(image.get("contact_id"), str):
                found[image["contact_id"]] = None
    return sorted(found) or [account_id], created


def keys_for(
    conn: sa.Connection, account_id: str, subjects: list[str], now: str, created: set[str]
) -> list[bytes]:
    """Each subject's data key, made on first use (a contact created by this action: insert
    first; else look it up first)."""
    dialect = conn.dialect.name
    # Many subjects (a bulk update): their existing keys in a few statements, not one each.
    bulk = len(subjects) > 8
    known = keys_of(conn, account_id, subjects) if bulk else {}
    out: list[bytes] = []
    for subject in subjects:
        params = {"acct": account_id, "subject": subject}
        if subject in known:
            out.append(base64.b64decode(known[subject]))
            continue
        rows = None if subject in created or bulk else _ONE_KEY.execute(conn, params)
        if not rows:
            fresh = base64.b64encode(os.urandom(32)).decode()
            rows = _INSERT_KEY[dialect].execute(
                conn,
                {"account_id": account_id, "subject_id": subject, "key": fresh, "created_at": now},
            )
            if not rows:  # it existed (a concurrent first use, or a contact created again)
                rows = _ONE_KEY.execute(conn, params)
        assert rows
        out.append(base64.b64decode(rows[0][0]))
    return out


def _payload_key(keys: list[bytes]) -> bytes:
    if len(keys) == 1:
        return keys[0]
    return sha256(b"krabs payload key\0" + b"".join(keys)).digest()


def _aad(account_id: str, digest: str, part: str) -> bytes:
    return f"{account_id}\0{digest}\0{part}".encode()


def _dumps(value: Any) -> bytes:
    """Compact JSON. Not RFC 8785: the commitment is over these exact bytes, stored (sealed) and
    verified as they are, never re-serialized, so the C encoder's speed is what matters."""
    return json.dumps(value, separators=(",", ":"), allow_nan=False).encode()


def _mac(salt: bytes, data: bytes) -> str:
    return hmac.digest(salt, data, "sha256").hex()


def _encrypt(aes: AESGCM, plain: bytes, aad: bytes) -> str:
    nonce = os.urandom(NONCE)
    return PREFIX + base64.b64encode(nonce + aes.encrypt(nonce, plain, aad)).decode()


def _decrypt(key: bytes, text: str, aad: bytes) -> bytes:
    try:
        raw = binascii.a2b_base64(text[len(PREFIX) :], strict_mode=True)
        return AESGCM(key).decrypt(raw[:NONCE], raw[NONCE:], aad)
    except (InvalidTag, ValueError, binascii.Error):
        raise Unreadable(
            "the sealed payload does not open (altered, or sealed under another key)"
        ) from None


def seal(
    account_id: str,
    subjects: list[str],
    keys: list[bytes],
    args: dict[str, Any],
    result: dict[str, Any],
    changes: list[dict[str, Any]],
) -> Sealed:
    """Seal one action's payload; ``digest`` (the record's commitment) binds both parts."""
    salt = os.urandom(SALT)
    befores = [ch.get("before") for ch in changes]
    afters = [{k: v for k, v in ch.items() if k != "before"} for ch in changes]
    undo_bytes = _dumps(befores)
    result_bytes = _dumps(result)
    # The main part is {"args", "result", "changes", "undo"} assembled from its pieces, so the
    # result is encoded once for both commitments; "undo" last: verification finds its commitment
    # at the end of the bytes without parsing.
    main_bytes = b"".join(
        (
            b'{"args":',
            _dumps(args),
            b',"result":',
            result_bytes,
            b',"changes":',
            _dumps(afters),
            b',"undo":"',
            _mac(salt, undo_bytes).encode(),
            b'"}',
        )
    )
    digest = _mac(salt, main_bytes)
    aes = AESGCM(_payload_key(keys))
    return Sealed(
        digest=digest,
        body=_encrypt(aes, salt + main_bytes, _aad(account_id, digest, "main")),
        undo=_encrypt(aes, undo_bytes, _aad(account_id, digest, "undo")),
        subjects=" ".join(subjects),
        result_digest=_mac(salt, result_bytes),
        result_bytes=result_bytes,
    )


def is_sealed(body: str) -> bool:
    return body.startswith(PREFIX)


def open_payload(
    account_id: str,
    digest: str,
    body: str,
    undo: str | None,
    subjects: str | None,
    keys: Mapping[str, str],
) -> tuple[dict[str, Any], bool]:
    """The payload as ``{"args", "result", "changes"}`` (changes with their before-images when the
    undo part is still kept) and whether it was; checks both parts against the commitment."""
    if not is_sealed(body):
        if sha256(body.encode()).hexdigest() != digest:
            raise Unreadable("payload differs from its digest")
        return dict(json.loads(body)), True
    try:
        key = _payload_key([base64.b64decode(keys[s]) for s in (subjects or "").split()])
    except KeyError:
        raise Unreadable("a data key of this payload is gone") from None
    plain = _decrypt(key, body, _aad(account_id, digest, "main"))
    salt, main_bytes = plain[:SALT], plain[SALT:]
    if not hmac.compare_digest(_mac(salt, main_bytes), digest):
        raise Unreadable("payload differs from its commitment")
    main = json.loads(main_bytes)
    changes = main["changes"]
    if undo is None:
        return {"args": main["args"], "result": main["result"], "changes": changes}, False
    undo_bytes = _decrypt(key, undo, _aad(account_id, digest, "undo"))
    if not hmac.compare_digest(_mac(salt, undo_bytes), main["undo"]):
        raise Unreadable("undo images differ from their commitment")
    befores = json.loads(undo_bytes)
    merged = [
        ch if ch.get("compact") else {"table": ch["table"], "id": ch["id"], "before": b, **ch}
        for ch, b in zip(changes, befores, strict=True)
    ]
    return {"args": main["args"], "result": main["result"], "changes": merged}, True


def check_row(account_id: str, row: Mapping[str, Any], keys: Mapping[str, str]) -> bool:
    """Whether a stored payload row opens and matches its commitment (verification: no JSON is
    parsed; the main part's bytes end with the undo part's commitment, ``"undo"`` being written
    last)."""
    digest, body, undo = str(row["digest"]), str(row["body"]), row.get("undo")
    if not is_sealed(body):
        return sha256(body.encode()).hexdigest() == digest
    try:
        key = _payload_key([base64.b64decode(keys[s]) for s in (row.get("subjects") or "").split()])
        plain = _decrypt(key, body, _aad(account_id, digest, "main"))
        salt, main_bytes = plain[:SALT], plain[SALT:]
        if not hmac.compare_digest(_mac(salt, main_bytes), digest):
            return False
        if undo is None:
            return True
        tail = main_bytes[-(len(b'"undo":""}') + 64) :]
        if not (tail.startswith(b'"undo":"') and tail.endswith(b'"}')):
            return False
        undo_bytes = _decrypt(key, str(undo), _aad(account_id, digest, "undo"))
        return hmac.compare_digest(_mac(salt, undo_bytes).encode(), tail[8:-2])
    except (Unreadable, KeyError, ValueError, TypeError):
        return False


def keys_of(conn: sa.Connection, account_id: str, subjects: list[str]) -> dict[str, str]:
    """These subjects' live data keys (subject -> base64); erased ones are absent."""
    k = audit_data_keys
    out: dict[str, str] = {}
    for start in range(0, len(subjects), 500):
        rows = conn.execute(
            sa.select(k.c.subject_id, k.c.key).where(
                k.c.account_id == account_id, k.c.subject_id.in_(subjects[start : start + 500])
            )
        )
        out.update({str(r.subject_id): str(r.key) for r in rows})
    return out
