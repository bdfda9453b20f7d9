"""sealed audit payloads: per-contact data keys, sealed undo images

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-23 17:50:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "audit_data_keys",
        sa.Column("account_id", sa.String(length=40), nullable=False),
        sa.Column("subject_id", sa.String(length=40), nullable=False),
        sa.Column("key", sa.String(length=44), nullable=False),
        sa.Column("created_at", sa.String(length=32), nullable=False),
        sa.ForeignKeyConstraint(
            ["account_id"], ["accounts.id"], name=op.f("fk_audit_data_keys_account_id_accounts")
        ),
        sa.PrimaryKeyConstraint("account_id", "subject_id", name=op.f("pk_audit_data_keys")),
    )
    with op.batch_alter_table("audit_payloads", schema=None) as batch_op:
        batch_op.add_column(sa.Column("subjects", sa.Text(), nullable=True))
        batch_op.add_column(sa.Column("undo", sa.Text(), nullable=True))
        batch_op.add_column(sa.Column("images_at", sa.String(length=32), nullable=True))
        batch_op.create_index(
            batch_op.f("ix_audit_payloads_images_at"), ["images_at"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("audit_payloads", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_audit_payloads_images_at"))
        batch_op.drop_column("images_at")
        batch_op.drop_column("undo")
        batch_op.drop_column("subjects")
    op.drop_table("audit_data_keys")
