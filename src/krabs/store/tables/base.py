"""The shared metadata of every table, and the column types they use. Timestamps are fixed-width
ISO-8601 UTC strings (``2026-05-16T14:22:08.000000Z``) so they sort lexically, compare identically on
SQLite and PostgreSQL, and appear verbatim in audit images."""

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


def timestamp(name: str, nullable: bool = False) -> sa.Column:
    return sa.Column(name, TS, nullable=nullable)


def live_unique(name: str, *cols: str) -> sa.Index:
    """A uniqueness rule over live rows only: a deleted row frees its value."""
    return sa.Index(
        name,
        *cols,
        unique=True,
        sqlite_where=sa.text("deleted_at IS NULL"),
        postgresql_where=sa.text("deleted_at IS NULL"),
    )
