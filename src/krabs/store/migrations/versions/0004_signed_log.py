"""signed log: signatures, checkpoints, keys, erasure

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-23 15:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "audit_signing_keys",
        sa.Column("name", sa.String(length=80), nullable=False),
        sa.Column("public_key", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.String(length=32), nullable=False),
        sa.Column("retired_at", sa.String(length=32), nullable=True),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_audit_signing_keys")),
    )
    op.create_table(
        "audit_account_keys",
        sa.Column("account_id", sa.String(length=40), nullable=False),
        sa.Column("name", sa.String(length=80), nullable=False),
        sa.Column("public_key", sa.String(length=64), nullable=False),
        sa.Column("from_seq", sa.BigInteger(), nullable=False),
        sa.Column("to_seq", sa.BigInteger(), nullable=True),
        sa.Column("created_at", sa.String(length=32), nullable=False),
        sa.ForeignKeyConstraint(
            ["account_id"], ["accounts.id"], name=op.f("fk_audit_account_keys_account_id_accounts")
        ),
        sa.PrimaryKeyConstraint("account_id", "name", name=op.f("pk_audit_account_keys")),
    )
    with op.batch_alter_table("audit_actions", schema=None) as batch_op:
        batch_op.add_column(sa.Column("signature", sa.String(length=88), nullable=True))
        batch_op.add_column(sa.Column("signing_key", sa.String(length=80), nullable=True))
    op.create_table(
        "audit_checkpoints",
        sa.Column("account_id", sa.String(length=40), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("root", sa.String(length=64), nullable=False),
        sa.Column("frontier", sa.Text(), nullable=False),
        sa.Column("note", sa.Text(), nullable=False),
        sa.Column("reason", sa.String(length=16), nullable=False),
        sa.Column("created_at", sa.String(length=32), nullable=False),
        sa.ForeignKeyConstraint(
            ["account_id"], ["accounts.id"], name=op.f("fk_audit_checkpoints_account_id_accounts")
        ),
        sa.PrimaryKeyConstraint("account_id", "size", name=op.f("pk_audit_checkpoints")),
    )
    op.create_table(
        "contact_erasures",
        sa.Column("account_id", sa.String(length=40), nullable=False),
        sa.Column("payload_digest", sa.String(length=64), nullable=False),
        sa.Column("contact_id", sa.String(length=40), nullable=False),
        sa.Column("action_id", sa.String(length=40), nullable=False),
        sa.Column("erased_seq", sa.BigInteger(), nullable=True),
        sa.ForeignKeyConstraint(
            ["account_id"], ["accounts.id"], name=op.f("fk_contact_erasures_account_id_accounts")
        ),
        sa.PrimaryKeyConstraint("account_id", "payload_digest", name=op.f("pk_contact_erasures")),
    )
    with op.batch_alter_table("contact_erasures", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_contact_erasures_account_id_action_id"),
            ["account_id", "action_id"],
            unique=False,
        )


def downgrade() -> None:
    with op.batch_alter_table("contact_erasures", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_contact_erasures_account_id_action_id"))
    op.drop_table("contact_erasures")
    op.drop_table("audit_checkpoints")
    with op.batch_alter_table("audit_actions", schema=None) as batch_op:
        batch_op.drop_column("signing_key")
        batch_op.drop_column("signature")
    op.drop_table("audit_account_keys")
    op.drop_table("audit_signing_keys")
