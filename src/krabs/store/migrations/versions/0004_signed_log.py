"""signed log: signatures, checkpoints, keys, erasure

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-23 15:00:00
"""

from __future__ import annotations

import sqlalchemy as sa  # noqa: F401
from alembic import op  # noqa: F401

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Filled in by the signed-log work (issue 7)."""


def downgrade() -> None:
    """Filled in by the signed-log work (issue 7)."""
