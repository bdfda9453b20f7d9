"""The tables. Timestamps are fixed-width ISO-8601 UTC strings (``2026-05-16T14:22:08.000000Z``) so they
sort lexically, compare identically on SQLite and PostgreSQL, and appear verbatim in audit images."""

from __future__ import annotations

import sqlalchemy as sa

metadata = sa.MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
        "ck": "ck_%(table_name)s_%(constraint_name)s",
    }
)

ID = sa.String(40)
TS = sa.String(32)


def _ts(name: str, nullable: bool = False) -> sa.Column:
    return sa.Column(name, TS, nullable=nullable)


accounts = sa.Table(
    "accounts",
    metadata,
    sa.Column("id", ID, primary_key=True),
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("default_region", sa.String(2)),
    sa.Column("settings", sa.JSON, nullable=False),
    _ts("created_at"),
    _ts("updated_at"),
)

api_keys = sa.Table(
    "api_keys",
    metadata,
    sa.Column("id", ID, primary_key=True),
    sa.Column("account_id", ID, sa.ForeignKey("accounts.id"), nullable=False),
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("secret_hash", sa.String(64), nullable=False, unique=True),
    sa.Column("prefix", sa.String(40), nullable=False),
    sa.Column("scopes", sa.JSON, nullable=False),
    sa.Column("agent_id", sa.String(80), nullable=False),
    sa.Column("created_by", ID),
    _ts("created_at"),
    _ts("last_used_at", nullable=True),
    _ts("expires_at", nullable=True),
    _ts("revoked_at", nullable=True),
    sa.Index(None, "account_id", "id"),
)

runs = sa.Table(
    "runs",
    metadata,
    sa.Column("id", ID, primary_key=True),
    sa.Column("account_id", ID, sa.ForeignKey("accounts.id"), nullable=False),
    sa.Column("agent_id", sa.String(80), nullable=False),
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("status", sa.String(24), nullable=False),
    sa.Column("default_day", sa.String(10)),
    _ts("created_at"),
    _ts("updated_at"),
    _ts("closed_at", nullable=True),
    sa.Index(None, "account_id", "id"),
    sa.Index(
        "uq_runs_default_day",
        "account_id",
        "agent_id",
        "default_day",
        unique=True,
        sqlite_where=sa.text("default_day IS NOT NULL"),
        postgresql_where=sa.text("default_day IS NOT NULL"),
    ),
)

contacts = sa.Table(
    "contacts",
    metadata,
    sa.Column("id", ID, primary_key=True),
    sa.Column("account_id", ID, sa.ForeignKey("accounts.id"), nullable=False),
    sa.Column("display_name", sa.String(400)),
    sa.Column("given_name", sa.String(200)),
    sa.Column("family_name", sa.String(200)),
    sa.Column("company", sa.String(200)),
    sa.Column("title", sa.String(200)),
    sa.Column("stage", sa.String(24)),
    sa.Column("owner", sa.String(200)),
    sa.Column("attributes", sa.JSON, nullable=False),
    _ts("created_at"),
    _ts("updated_at"),
    _ts("deleted_at", nullable=True),
    sa.Column("merged_into", ID),
    sa.Index(None, "account_id", "id"),
    sa.Index(None, "account_id", "updated_at"),
    sa.Index(None, "account_id", "stage", "id"),
)

identities = sa.Table(
    "identities",
    metadata,
    sa.Column("id", ID, primary_key=True),
    sa.Column("account_id", ID, sa.ForeignKey("accounts.id"), nullable=False),
    sa.Column("contact_id", ID, sa.ForeignKey("contacts.id"), nullable=False),
    sa.Column("kind", sa.String(16), nullable=False),
    sa.Column("value", sa.Text, nullable=False),
    sa.Column("normalized", sa.Text, nullable=False),
    #: SHA-256 of the normalized value: what the unique index holds (btree rows have a size limit).
    sa.Column("norm_hash", sa.String(64), nullable=False),
    sa.Column("is_primary", sa.Boolean, nullable=False),
    sa.Column("source", sa.String(200)),
    _ts("created_at"),
    _ts("deleted_at", nullable=True),
    sa.Index(None, "contact_id"),
    sa.Index(
        "uq_identities_live",
        "account_id",
        "kind",
        "norm_hash",
        unique=True,
        sqlite_where=sa.text("deleted_at IS NULL"),
        postgresql_where=sa.text("deleted_at IS NULL"),
    ),
)

audit_actions = sa.Table(
    "audit_actions",
    metadata,
    sa.Column("id", ID, primary_key=True),
    sa.Column("account_id", ID, sa.ForeignKey("accounts.id"), nullable=False),
    sa.Column("seq", sa.BigInteger, nullable=False),
    _ts("created_at"),
    sa.Column("op", sa.String(80), nullable=False),
    sa.Column("run_id", ID),
    sa.Column("key_id", ID),
    sa.Column("agent_id", sa.String(80)),
    sa.Column("record", sa.Text, nullable=False),
    sa.Column("hash", sa.String(64), nullable=False),
    sa.Column("prev_hash", sa.String(64), nullable=False),
    sa.Column("payload_digest", sa.String(64), nullable=False),
    sa.Column("undo_token_hash", sa.String(64), unique=True),
    _ts("undo_expires_at", nullable=True),
    sa.Column("undo_of", ID),
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
    sa.PrimaryKeyConstraint("account_id", "digest"),
)

audit_heads = sa.Table(
    "audit_heads",
    metadata,
    sa.Column("account_id", ID, sa.ForeignKey("accounts.id"), primary_key=True),
    sa.Column("seq", sa.BigInteger, nullable=False),
    sa.Column("hash", sa.String(64), nullable=False),
)

idempotency_keys = sa.Table(
    "idempotency_keys",
    metadata,
    sa.Column("account_id", ID, nullable=False),
    sa.Column("key", sa.String(255), nullable=False),
    sa.Column("op", sa.String(80), nullable=False),
    sa.Column("fingerprint", sa.String(64), nullable=False),
    sa.Column("status", sa.Integer, nullable=False),
    sa.Column("response", sa.Text, nullable=False),
    sa.Column("run_id", ID),
    sa.Column("action_id", ID),
    _ts("created_at"),
    _ts("expires_at"),
    sa.PrimaryKeyConstraint("account_id", "key"),
)

#: Tables whose rows an audit image may describe, by name; undo restores rows through this map.
BY_NAME: dict[str, sa.Table] = {t.name: t for t in metadata.sorted_tables}
