"""Apply Alembic migrations programmatically (``make run``, ``krabs migrate``, the tests)."""

from __future__ import annotations

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
    cfg = alembic_config()
    with store.engine.connect() as conn:
        if store.is_sqlite:
            conn.info["krabs_write"] = True
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, revision)
        conn.commit()
