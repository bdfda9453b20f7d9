"""Accounts, their API keys and runs, contacts and their identities, idempotency keys."""

from __future__ import annotations

import sqlalchemy as sa

from krabs.store.tables.base import ID, metadata, timestamp

accounts = sa.Table(
    "accounts",
    metadata,
    sa.Column("id", ID, primary_key=True),
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("default_region", sa.String(2)),
    sa.Column("settings", sa.JSON, nullable=False),
    timestamp("created_at"),
    timestamp("updated_at"),
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
    timestamp("created_at"),
    timestamp("last_used_at", nullable=True),
    timestamp("expires_at", nullable=True),
    timestamp("revoked_at", nullable=True),
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
    timestamp("created_at"),
    timestamp("updated_at"),
    timestamp("closed_at", nullable=True),
    # Added by migration 0003: the run's event counter and running stats, kept by run_events' writer.
    sa.Column("last_seq", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("calls", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("errors", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("writes", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("input_tokens", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("output_tokens", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("cost_micros", sa.BigInteger, nullable=False, server_default="0"),
    timestamp("last_call_at", nullable=True),
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
    timestamp("created_at"),
    timestamp("updated_at"),
    timestamp("deleted_at", nullable=True),
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
    #: ``krabs.normalize.norm_hash`` of (account, kind, normalized): the one short key the unique
    #: index holds (btree rows have a size limit, and a small index stays in the page cache).
    sa.Column("norm_hash", sa.String(64), nullable=False),
    sa.Column("is_primary", sa.Boolean, nullable=False),
    sa.Column("source", sa.String(200)),
    timestamp("created_at"),
    timestamp("deleted_at", nullable=True),
    sa.Index(None, "contact_id"),
    sa.Index(
        "uq_identities_live",
        "norm_hash",
        unique=True,
        sqlite_where=sa.text("deleted_at IS NULL"),
        postgresql_where=sa.text("deleted_at IS NULL"),
    ),
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
    timestamp("created_at"),
    timestamp("expires_at"),
    sa.PrimaryKeyConstraint("account_id", "key"),
)
