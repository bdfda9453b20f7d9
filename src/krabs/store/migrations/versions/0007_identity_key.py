"""identity key: one 128-bit hash of (account, kind, normalized) as the live-identity unique index

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-06 23:20:00

The unique index on (account_id, kind, norm_hash) held about 110 bytes an entry; an import's random
probes and inserts into it left the page cache once an account passed a few hundred thousand
identities. The key now folds the three into 32 hex characters.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

LIVE = sa.text("deleted_at IS NULL")
BATCH = 2000


# The two keys as of this revision, copied rather than imported so that the migration keeps
# computing these even if ``krabs.normalize.norm_hash`` changes again.
def folded_key(account_id: str, kind: str, normalized: str) -> str:
    return hashlib.sha256(f"{account_id}\x00{kind}\x00{normalized}".encode()).hexdigest()[:32]


def value_key(account_id: str, kind: str, normalized: str) -> str:
    return hashlib.sha256(normalized.encode("utf-8")).hexdigest()


def _rekey(key: Callable[[str, str, str], str]) -> None:
    """Recompute every identity's key, a batch at a time (never the whole table in memory)."""
    conn = op.get_bind()
    page = sa.text(
        "SELECT id, account_id, kind, normalized FROM identities WHERE id > :after "
        "ORDER BY id LIMIT :n"
    )
    update = sa.text("UPDATE identities SET norm_hash = :h WHERE id = :id")
    after = ""
    while rows := conn.execute(page, {"after": after, "n": BATCH}).all():
        conn.execute(update, [{"h": key(r[1], r[2], r[3]), "id": r[0]} for r in rows])
        after = rows[-1][0]


def upgrade() -> None:
    _rekey_index(folded_key, ["norm_hash"])


def downgrade() -> None:
    _rekey_index(value_key, ["account_id", "kind", "norm_hash"])


def _rekey_index(key: Callable[[str, str, str], str], columns: list[str]) -> None:
    """The unique index dropped, every key recomputed with ``key``, the index made on ``columns``."""
    op.drop_index("uq_identities_live", table_name="identities")
    _rekey(key)
    op.create_index(
        "uq_identities_live",
        "identities",
        columns,
        unique=True,
        sqlite_where=LIVE,
        postgresql_where=LIVE,
    )
