"""Apply Alembic migrations programmatically (``make run``, ``krabs migrate``, the tests)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from alembic import command
from alembic.config import Config

from krabs.store.db import Store

MIGRATIONS = Path(__file__).parent / "migrations"


def alembic_config() -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    return cfg


def migrate(store: Store, revision: str = "head") -> None:
    _run(store, command.upgrade, revision)


def downgrade(store: Store, revision: str) -> None:
    """Back to ``revision`` (the tests check that each migration goes both ways)."""
    _run(store, command.downgrade, revision)


def _run(store: Store, step: Callable[[Config, str], None], revision: str) -> None:
    cfg = alembic_config()
    with store.engine.connect() as conn:
        if store.is_sqlite:
            conn.info["krabs_write"] = True
        cfg.attributes["connection"] = conn
        step(cfg, revision)
        conn.commit()
