"""The dashboard's cookie sessions."""

from __future__ import annotations

import sqlalchemy as sa

from krabs.store.tables.base import ID, metadata, timestamp

# -- web sessions: the dashboard's cookie sessions (migration 0005) ---------------------------------

web_sessions = sa.Table(
    "web_sessions",
    metadata,
    sa.Column("id", sa.String(64), primary_key=True),  # SHA-256 of the cookie's secret
    sa.Column("account_id", ID, sa.ForeignKey("accounts.id"), nullable=False),
    sa.Column("key_id", ID, nullable=False),
    sa.Column("key_hash", sa.String(64), nullable=False),
    timestamp("created_at"),
    timestamp("expires_at"),
    timestamp("revoked_at", nullable=True),
    sa.Index(None, "key_id"),
)
