"""Ed25519 keys that sign the audit log: every record's leaf hash, and checkpoints.

Where the private key lives, and why. Each node's key is a file, never a database row:
``audit-signing.key`` in its data directory (or ``KRABS_AUDIT_KEY_FILE``), created with mode 0600 on
first use, holding the raw 32-byte seed. A database holding private keys in the clear would let
whoever can rewrite the log also re-sign it, which is the one thing signatures are for; encrypting
them there only moves the question to where that key lives; and copying one secret to every node
spreads it. So several nodes sharing a PostgreSQL database each keep their own key, and the database
holds public halves only, which all nodes agree on: ``audit_signing_keys`` registers every node's key
(a retired key is refused), and ``audit_account_keys`` says, per account, which keys sign which seq
range; it travels in the account export. Verifiers pin the keys they trust (``GET /v1/audit/key``,
``krabs audit verify --key``): a key a database attacker slipped in is then refused, and without pins
the verifier says that it did not check the keys' origin.

Rotation (``krabs audit rotate-key``) replaces this node's key: every account's log gets an
``audit.key_rotated`` record signed by the old key naming the new one, the old key's range closes
there and a checkpoint is signed by both; a rotated-in key needs no pin of its own.

``KRABS_AUDIT_SIGNING=off`` (``Settings.audit_signing``) turns signing off; it exists for the
benchmark that measures its cost."""

from __future__ import annotations

import base64
import hashlib
import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import nacl.bindings
import sqlalchemy as sa
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from nacl.bindings import crypto_sign_open
from nacl.exceptions import CryptoError

from krabs.store.tables import audit_account_keys, audit_signing_keys

KEY_FILE = "audit-signing.key"
#: C2SP signed-note signature type of Ed25519.
ED25519 = b"\x01"


class SigningError(RuntimeError):
    """This node's key cannot sign (it was retired by a rotation)."""


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def unb64(text: str) -> bytes:
    return base64.b64decode(text.encode(), validate=True)


def key_name(public: bytes) -> str:
    """The key's name in notes and records: stable, derived from the public key."""
    return "krabs-audit-" + hashlib.sha256(public).hexdigest()[:12]


def note_key_id(name: str, public: bytes) -> bytes:
    """The 4-byte key hash of a C2SP signed note: SHA-256(name ‖ 0x0A ‖ 0x01 ‖ key)[:4]."""
    return hashlib.sha256(name.encode() + b"\n" + ED25519 + public).digest()[:4]


def vkey(name: str, public: bytes) -> str:
    """The verifier key string of the note ecosystem: ``<name>+<hex key hash>+<base64 key>``."""
    return f"{name}+{note_key_id(name, public).hex()}+{b64(ED25519 + public)}"


def verify(public: bytes, signature: bytes, message: bytes) -> bool:
    """Ed25519 verification by libsodium (PyNaCl), as signing, not OpenSSL (``cryptography``):
    on this project's machines libsodium verifies in ~57 µs where OpenSSL takes ~109 µs, and
    ``krabs audit verify`` checks one signature per record (a million in a large log). libsodium is
    also the stricter of the two (it refuses non-canonical and small-order encodings)."""
    if len(public) != 32 or len(signature) != 64:
        return False
    try:
        crypto_sign_open(signature + message, public)
    except (CryptoError, ValueError, TypeError):
        return False
    return True


@dataclass(frozen=True)
class SigningKey:
    private: Ed25519PrivateKey
    public: bytes
    name: str
    #: libsodium's form of the same key (seed ‖ public), for ``sign``.
    sodium: bytes = b""

    @classmethod
    def from_seed(cls, seed: bytes) -> SigningKey:
        private = Ed25519PrivateKey.from_private_bytes(seed)
        public = private.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
        sodium_public, sodium = nacl.bindings.crypto_sign_seed_keypair(seed)
        assert sodium_public == public
        return cls(private, public, key_name(public), sodium)

    @classmethod
    def generate(cls) -> SigningKey:
        return cls.from_seed(os.urandom(32))

    def seed(self) -> bytes:
        from cryptography.hazmat.primitives.serialization import NoEncryption, PrivateFormat

        return self.private.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption())

    def sign(self, message: bytes) -> bytes:
        """The Ed25519 signature of ``message``. Signed by libsodium: Ed25519 signatures are
        deterministic, so the bytes are exactly ``cryptography``'s, at 60% of its cost (this runs
        for every audit record, on the write path)."""
        if not self.sodium:
            return self.private.sign(message)
        return nacl.bindings.crypto_sign(message, self.sodium)[:64]


def write_key_file(path: Path, key: SigningKey) -> None:
    """Write the seed readable by the owner only (created 0600, never widened by the umask)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    partial.unlink(missing_ok=True)
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(key.seed())
    os.replace(partial, path)


def read_key_file(path: Path) -> SigningKey:
    seed = path.read_bytes()
    if len(seed) != 32:
        raise SigningError(f"{path} is not an audit signing key (32 bytes expected)")
    return SigningKey.from_seed(seed)


def key_path(data_dir: Path) -> Path:
    return Path(os.environ.get("KRABS_AUDIT_KEY_FILE") or data_dir / KEY_FILE)


class Signer:
    """This node's signing key, registered once per database it writes to."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._key: SigningKey | None = None
        self._mtime = 0.0
        self._checked = 0.0
        self._bound: set[sa.Engine] = set()
        self._ranges: set[tuple[sa.Engine, str, str]] = set()

    @property
    def key(self) -> SigningKey:
        """The key, loaded (or created on first use); reloaded within a second of a rotation."""
        now = time.monotonic()
        if self._key is not None and now - self._checked < 1.0:
            return self._key
        with self._lock:
            self._checked = now
            try:
                mtime = self.path.stat().st_mtime
            except FileNotFoundError:
                mtime = -1.0
            if self._key is None or mtime != self._mtime:
                if mtime < 0:
                    self._key = SigningKey.generate()
                    write_key_file(self.path, self._key)
                    mtime = self.path.stat().st_mtime
                else:
                    self._key = read_key_file(self.path)
                self._mtime = mtime
                self._bound.clear()
                self._ranges.clear()
            return self._key

    def reload(self) -> None:
        """Read the key file again on next use (after this process replaced it)."""
        self._checked = 0.0
        self._mtime = 0.0

    def bind(self, conn: sa.Connection) -> SigningKey:
        """Register (once per database) this node's public key, refusing a retired one."""
        key = self.key
        db = conn.engine
        if db in self._bound:
            return key
        if not sa.event.contains(conn.engine, "rollback", self._forget):
            sa.event.listen(conn.engine, "rollback", self._forget)
        t = audit_signing_keys
        row = conn.execute(sa.select(t.c.retired_at).where(t.c.name == key.name)).first()
        if row is None:
            conn.execute(
                t.insert().values(
                    name=key.name, public_key=b64(key.public), created_at=_now(), retired_at=None
                )
            )
        elif row.retired_at is not None:
            raise SigningError(
                f"audit signing key {key.name} ({self.path}) was retired at {row.retired_at} by "
                "krabs audit rotate-key; this node must sign with the key file that replaced it"
            )
        self._bound.add(db)
        return key

    def _forget(self, conn: sa.Connection) -> None:
        """A write rolled back may have taken a registration this cache remembers: forget them."""
        if conn.info.get("krabs_write"):
            db = conn.engine
            self._bound.discard(db)
            self._ranges = {r for r in self._ranges if r[0] != db}

    def sign_record(
        self, conn: sa.Connection, account_id: str, seq: int, leaf: bytes
    ) -> tuple[str, str]:
        """Sign a record's leaf hash; the first record an account gets under this key opens the
        key's seq range for that account. Returns ``(key name, base64 signature)``."""
        key = self.bind(conn)
        slot = (conn.engine, account_id, key.name)
        if slot not in self._ranges:
            open_range(conn, account_id, key, seq)
            self._ranges.add(slot)
        return key.name, b64(key.sign(leaf))


def open_range(conn: sa.Connection, account_id: str, key: SigningKey, seq: int) -> None:
    """Make ``key`` the signer of the account's records from ``seq`` on, unless it already is."""
    t = audit_account_keys
    exists = conn.execute(
        sa.select(t.c.name).where(t.c.account_id == account_id, t.c.name == key.name)
    ).first()
    if exists is None:
        conn.execute(
            t.insert().values(
                account_id=account_id,
                name=key.name,
                public_key=b64(key.public),
                from_seq=seq,
                to_seq=None,
                created_at=_now(),
            )
        )


def _now() -> str:
    from krabs.engine.uow import utcnow

    return utcnow()


_signers: dict[Path, Signer] = {}
_by_dir: dict[Path, Signer] = {}
_signers_lock = threading.Lock()


def signer_for(data_dir: Path | None) -> Signer | None:
    """The process-wide signer of a data directory; None without one (signing is off:
    ``Settings.signing_dir``). On the write path: a dictionary lookup once the directory was
    seen."""
    if data_dir is None:
        return None
    signer = _by_dir.get(data_dir)
    if signer is None:
        path = key_path(data_dir).resolve()
        with _signers_lock:
            signer = _signers.setdefault(path, Signer(path))
            _by_dir[data_dir] = signer
    return signer
