"""Runs' events, approval gates and policies, background jobs."""

from __future__ import annotations

import sqlalchemy as sa

from krabs.store.tables.base import ID, metadata, timestamp

# -- runs: events, approvals, spans, jobs (migration 0003) ------------------------------------------

#: One row per run event. ``id`` is the global cursor (the firehose's), ``seq`` the run's own gap-free
#: counter (allocated from ``runs.last_seq`` in the writer's transaction). ``data`` is JSON text.
run_events = sa.Table(
    "run_events",
    metadata,
    sa.Column(
        "id",
        sa.BigInteger().with_variant(sa.Integer, "sqlite"),
        primary_key=True,
        autoincrement=True,
    ),
    sa.Column("account_id", ID, nullable=False),
    sa.Column("run_id", ID, nullable=False),
    sa.Column("seq", sa.BigInteger, nullable=False),
    timestamp("ts"),
    sa.Column("type", sa.String(40), nullable=False),
    sa.Column("op", sa.String(80)),
    sa.Column("action_id", ID),
    #: A tool_call's latency, kept out of ``data`` so run stats (p50/p95) need no JSON parsing.
    sa.Column("latency_ms", sa.Float),
    sa.Column("data", sa.Text, nullable=False),
    sa.UniqueConstraint("run_id", "seq"),
    sa.Index(None, "account_id", "id"),
)


#: Approval gates (issue 5): which operations need a human, per agent, per key or account-wide.
approval_policies = sa.Table(
    "approval_policies",
    metadata,
    sa.Column("id", ID, primary_key=True),
    sa.Column("account_id", ID, sa.ForeignKey("accounts.id"), nullable=False),
    #: ``*`` (every caller), ``agent:<agent_id>`` or ``key:<key_id>``.
    sa.Column("subject", sa.String(120), nullable=False),
    sa.Column("rules", sa.JSON, nullable=False),
    sa.Column("updated_by", sa.String(80)),
    timestamp("created_at"),
    timestamp("updated_at"),
    sa.UniqueConstraint("account_id", "subject"),
)

approvals = sa.Table(
    "approvals",
    metadata,
    sa.Column("id", ID, primary_key=True),
    sa.Column("account_id", ID, sa.ForeignKey("accounts.id"), nullable=False),
    sa.Column("run_id", ID),
    sa.Column("agent_id", sa.String(80), nullable=False),
    sa.Column("key_id", ID),
    sa.Column("op", sa.String(80), nullable=False),
    sa.Column("fingerprint", sa.String(64), nullable=False),
    sa.Column("idempotency_key", sa.String(255)),
    sa.Column("args", sa.JSON, nullable=False),
    sa.Column("reason", sa.String(300), nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("decided_by", sa.String(120)),
    sa.Column("note", sa.Text),
    timestamp("created_at"),
    timestamp("decided_at", nullable=True),
    timestamp("consumed_at", nullable=True),
    sa.Index(None, "account_id", "idempotency_key"),
    sa.Index(None, "account_id", "run_id", "status"),
)

#: Background work (queued batch runs), taken with FOR UPDATE SKIP LOCKED on PostgreSQL.
jobs = sa.Table(
    "jobs",
    metadata,
    sa.Column("id", ID, primary_key=True),
    sa.Column("account_id", ID, sa.ForeignKey("accounts.id"), nullable=False),
    sa.Column("kind", sa.String(40), nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("run_id", ID),
    sa.Column("principal", sa.JSON, nullable=False),
    sa.Column("payload", sa.JSON, nullable=False),
    sa.Column("result", sa.JSON),
    sa.Column("attempts", sa.Integer, nullable=False),
    timestamp("created_at"),
    timestamp("started_at", nullable=True),
    timestamp("finished_at", nullable=True),
    sa.Index(None, "status", "created_at"),
    sa.Index(None, "account_id", "id"),
)
