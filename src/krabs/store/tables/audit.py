"""The audit log: actions (the signed records), their targets and payloads, the chain head, signing keys, checkpoints, erasures and data keys."""

from __future__ import annotations

import sqlalchemy as sa

from krabs.store.tables.base import ID, metadata, timestamp

audit_actions = sa.Table(
    "audit_actions",
    metadata,
    sa.Column("id", ID, primary_key=True),
    sa.Column("account_id", ID, sa.ForeignKey("accounts.id"), nullable=False),
    sa.Column("seq", sa.BigInteger, nullable=False),
    timestamp("created_at"),
    sa.Column("op", sa.String(80), nullable=False),
    sa.Column("run_id", ID),
    sa.Column("key_id", ID),
    sa.Column("agent_id", sa.String(80)),
    sa.Column("record", sa.Text, nullable=False),
    sa.Column("hash", sa.String(64), nullable=False),
    sa.Column("prev_hash", sa.String(64), nullable=False),
    sa.Column("payload_digest", sa.String(64), nullable=False),
    sa.Column("undo_token_hash", sa.String(64), unique=True),
    timestamp("undo_expires_at", nullable=True),
    sa.Column("undo_of", ID),
    #: The signed log (migration 0004): Ed25519 signature (base64) of the record's Merkle leaf hash
    #: and the name of the key that made it; NULL for records from before signing.
    sa.Column("signature", sa.String(88)),
    sa.Column("signing_key", sa.String(80)),
    sa.UniqueConstraint("account_id", "seq"),
    sa.Index(
        "uq_audit_actions_undo_of",
        "account_id",
        "undo_of",
        unique=True,
        sqlite_where=sa.text("undo_of IS NOT NULL"),
        postgresql_where=sa.text("undo_of IS NOT NULL"),
    ),
    sa.Index(None, "account_id", "op", "seq"),
    sa.Index(None, "account_id", "run_id", "seq"),
)

audit_targets = sa.Table(
    "audit_targets",
    metadata,
    sa.Column("account_id", ID, nullable=False),
    sa.Column("target_id", ID, nullable=False),
    sa.Column("seq", sa.BigInteger, nullable=False),
    sa.Column("action_id", ID, nullable=False),
    sa.PrimaryKeyConstraint("account_id", "target_id", "seq"),
)

audit_payloads = sa.Table(
    "audit_payloads",
    metadata,
    sa.Column("account_id", ID, nullable=False),
    sa.Column("digest", sa.String(64), nullable=False),
    sa.Column("body", sa.Text, nullable=False),
    #: Sealed payloads (migration 0006, ``krabs.audit.sealing``): the subjects whose data keys seal
    #: it (space-separated contact ids, or the account id), the sealed before-images undo needs, and
    #: the action's time while those are kept (the retention sweep drops them after 24 h).
    sa.Column("subjects", sa.Text),
    sa.Column("undo", sa.Text),
    timestamp("images_at", nullable=True),
    sa.PrimaryKeyConstraint("account_id", "digest"),
    sa.Index(None, "images_at"),
)

audit_heads = sa.Table(
    "audit_heads",
    metadata,
    sa.Column("account_id", ID, sa.ForeignKey("accounts.id"), primary_key=True),
    sa.Column("seq", sa.BigInteger, nullable=False),
    sa.Column("hash", sa.String(64), nullable=False),
)


# -- the signed log: signatures, checkpoints, signing keys, erasure (migration 0004) ----------------

#: Every node's audit signing key, public halves only (each private key is a file in its node's data
#: directory: see ``krabs.audit.signing``); ``retired_at`` is set by key rotation.
audit_signing_keys = sa.Table(
    "audit_signing_keys",
    metadata,
    sa.Column("name", sa.String(80), primary_key=True),
    sa.Column("public_key", sa.String(64), nullable=False),
    timestamp("created_at"),
    timestamp("retired_at", nullable=True),
)

#: Which key signs which of an account's records: seq ``from_seq`` to ``to_seq`` (NULL while open).
audit_account_keys = sa.Table(
    "audit_account_keys",
    metadata,
    sa.Column("account_id", ID, sa.ForeignKey("accounts.id"), nullable=False),
    sa.Column("name", sa.String(80), nullable=False),
    sa.Column("public_key", sa.String(64), nullable=False),
    sa.Column("from_seq", sa.BigInteger, nullable=False),
    sa.Column("to_seq", sa.BigInteger),
    timestamp("created_at"),
    sa.PrimaryKeyConstraint("account_id", "name"),
)

#: Signed tree heads (C2SP signed notes); ``frontier`` is the tree's compact range (hex hashes,
#: comma-separated) from which the next checkpoint grows without re-reading the log.
audit_checkpoints = sa.Table(
    "audit_checkpoints",
    metadata,
    sa.Column("account_id", ID, sa.ForeignKey("accounts.id"), nullable=False),
    sa.Column("size", sa.BigInteger, nullable=False),
    sa.Column("root", sa.String(64), nullable=False),
    sa.Column("frontier", sa.Text, nullable=False),
    sa.Column("note", sa.Text, nullable=False),
    sa.Column("reason", sa.String(16), nullable=False),
    timestamp("created_at"),
    sa.PrimaryKeyConstraint("account_id", "size"),
)

#: Audit payloads erased for GDPR (``contact.delete`` with ``erase``): which contact, which action
#: erased it and that action's seq, so verification reports "erased at #N" instead of missing.
contact_erasures = sa.Table(
    "contact_erasures",
    metadata,
    sa.Column("account_id", ID, sa.ForeignKey("accounts.id"), nullable=False),
    sa.Column("payload_digest", sa.String(64), nullable=False),
    sa.Column("contact_id", ID, nullable=False),
    sa.Column("action_id", ID, nullable=False),
    sa.Column("erased_seq", sa.BigInteger),
    sa.PrimaryKeyConstraint("account_id", "payload_digest"),
    sa.Index(None, "account_id", "action_id"),
)


#: Data keys (migration 0006): one AES-256 key (base64) per contact whose personal data audit
#: payloads hold, and one per account for payloads touching no contact. Erasing a contact deletes
#: its key; an account export carries the live keys only.
audit_data_keys = sa.Table(
    "audit_data_keys",
    metadata,
    sa.Column("account_id", ID, sa.ForeignKey("accounts.id"), nullable=False),
    sa.Column("subject_id", ID, nullable=False),
    sa.Column("key", sa.String(44), nullable=False),
    timestamp("created_at"),
    sa.PrimaryKeyConstraint("account_id", "subject_id"),
)
