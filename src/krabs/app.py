"""Wiring: settings → store (migrated) → engine → ASGI app. Shared by ``krabs serve`` and the tests."""

from __future__ import annotations

from krabs.config import Settings
from krabs.engine import Engine
from krabs.store.db import Store
from krabs.store.migrate import migrate


def open_store(settings: Settings) -> Store:
    if not settings.database_url:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
    store = Store(settings.url)
    migrate(store)
    return store


def open_engine(settings: Settings) -> Engine:
    return Engine(open_store(settings), settings)
