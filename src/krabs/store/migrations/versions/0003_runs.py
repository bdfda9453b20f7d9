"""runs: events, approvals, spans, jobs

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-23 15:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Filled in by the runs work (issue 5)."""
    _upgrade_events()
    _upgrade_approvals_jobs()


def downgrade() -> None:
    """Filled in by the runs work (issue 5)."""
    _downgrade_approvals_jobs()
    _downgrade_events()


def _upgrade_approvals_jobs() -> None:
    """Approval gates and background jobs (keep identical to store/tables/)."""
    op.create_table(
        "approval_policies",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("account_id", sa.String(length=40), nullable=False),
        sa.Column("subject", sa.String(length=120), nullable=False),
        sa.Column("rules", sa.JSON(), nullable=False),
        sa.Column("updated_by", sa.String(length=80), nullable=True),
        sa.Column("created_at", sa.String(length=32), nullable=False),
        sa.Column("updated_at", sa.String(length=32), nullable=False),
        sa.ForeignKeyConstraint(
            ["account_id"], ["accounts.id"], name=op.f("fk_approval_policies_account_id_accounts")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_approval_policies")),
        sa.UniqueConstraint(
            "account_id", "subject", name=op.f("uq_approval_policies_account_id_subject")
        ),
    )
    op.create_table(
        "approvals",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("account_id", sa.String(length=40), nullable=False),
        sa.Column("run_id", sa.String(length=40), nullable=True),
        sa.Column("agent_id", sa.String(length=80), nullable=False),
        sa.Column("key_id", sa.String(length=40), nullable=True),
        sa.Column("op", sa.String(length=80), nullable=False),
        sa.Column("fingerprint", sa.String(length=64), nullable=False),
        sa.Column("idempotency_key", sa.String(length=255), nullable=True),
        sa.Column("args", sa.JSON(), nullable=False),
        sa.Column("reason", sa.String(length=300), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("decided_by", sa.String(length=120), nullable=True),
        sa.Column("note", sa.Text(), nullable=True),
        sa.Column("created_at", sa.String(length=32), nullable=False),
        sa.Column("decided_at", sa.String(length=32), nullable=True),
        sa.Column("consumed_at", sa.String(length=32), nullable=True),
        sa.ForeignKeyConstraint(
            ["account_id"], ["accounts.id"], name=op.f("fk_approvals_account_id_accounts")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_approvals")),
    )
    op.create_index(
        op.f("ix_approvals_account_id_idempotency_key"),
        "approvals",
        ["account_id", "idempotency_key"],
    )
    op.create_index(
        op.f("ix_approvals_account_id_run_id_status"),
        "approvals",
        ["account_id", "run_id", "status"],
    )
    op.create_table(
        "jobs",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("account_id", sa.String(length=40), nullable=False),
        sa.Column("kind", sa.String(length=40), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("run_id", sa.String(length=40), nullable=True),
        sa.Column("principal", sa.JSON(), nullable=False),
        sa.Column("payload", sa.JSON(), nullable=False),
        sa.Column("result", sa.JSON(), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.String(length=32), nullable=False),
        sa.Column("started_at", sa.String(length=32), nullable=True),
        sa.Column("finished_at", sa.String(length=32), nullable=True),
        sa.ForeignKeyConstraint(
            ["account_id"], ["accounts.id"], name=op.f("fk_jobs_account_id_accounts")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_jobs")),
    )
    op.create_index(op.f("ix_jobs_status_created_at"), "jobs", ["status", "created_at"])
    op.create_index(op.f("ix_jobs_account_id_id"), "jobs", ["account_id", "id"])


def _downgrade_approvals_jobs() -> None:
    op.drop_table("jobs")
    op.drop_table("approvals")
    op.drop_table("approval_policies")


#: Counters added to ``runs``: the event sequence and the run's running stats.
_RUN_COUNTERS = (
    "last_seq",
    "calls",
    "errors",
    "writes",
    "input_tokens",
    "output_tokens",
    "cost_micros",
)


def _upgrade_events() -> None:
    """The run's event counter and stats on ``runs``, and ``run_events`` (keep identical to
    store/tables/)."""
    with op.batch_alter_table("runs", schema=None) as batch_op:
        for name in _RUN_COUNTERS:
            batch_op.add_column(
                sa.Column(name, sa.BigInteger(), nullable=False, server_default="0")
            )
        batch_op.add_column(sa.Column("last_call_at", sa.String(length=32), nullable=True))
    op.create_table(
        "run_events",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("account_id", sa.String(length=40), nullable=False),
        sa.Column("run_id", sa.String(length=40), nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("ts", sa.String(length=32), nullable=False),
        sa.Column("type", sa.String(length=40), nullable=False),
        sa.Column("op", sa.String(length=80), nullable=True),
        sa.Column("action_id", sa.String(length=40), nullable=True),
        sa.Column("latency_ms", sa.Float(), nullable=True),
        sa.Column("data", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_run_events")),
        sa.UniqueConstraint("run_id", "seq", name=op.f("uq_run_events_run_id_seq")),
    )
    op.create_index(op.f("ix_run_events_account_id_id"), "run_events", ["account_id", "id"])


def _downgrade_events() -> None:
    op.drop_index(op.f("ix_run_events_account_id_id"), table_name="run_events")
    op.drop_table("run_events")
    with op.batch_alter_table("runs", schema=None) as batch_op:
        batch_op.drop_column("last_call_at")
        for name in reversed(_RUN_COUNTERS):
            batch_op.drop_column(name)
