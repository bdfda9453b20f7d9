"""The signed log's background work while a server runs: every 15 s, sign a checkpoint for each
account whose log grew and whose last checkpoint is 60 s old (the write path only checks when the
next write comes); every 5 minutes, drop undo images past their 24 h retention; after a GDPR
erasure, truncate SQLite's write-ahead log."""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import AsyncIterator
from pathlib import Path

import anyio
import anyio.to_thread

from krabs.audit import erasure
from krabs.audit.checkpoint import due, sign_checkpoint
from krabs.audit.retention import UNDO_TTL_SECONDS, drop_undo_images
from krabs.store.db import Store

INTERVAL_SECONDS = 15.0
RETENTION_SECONDS = 300.0
log = logging.getLogger("krabs.audit")


def sweep(store: Store, data_dir: Path | None) -> list[str]:
    """Checkpoint every account that is due; returns their ids."""
    with store.connect(write=False) as conn:
        accounts = due(conn)
    for account_id in accounts:
        with store.transaction(write=True) as conn:
            sign_checkpoint(conn, account_id, data_dir, reason="time")
    return accounts


def sweep_retention(store: Store, ttl_seconds: int = UNDO_TTL_SECONDS) -> int:
    """Drop undo images past their retention; returns how many payloads lost theirs."""
    with store.transaction(write=True) as conn:
        return drop_undo_images(conn, ttl_seconds=ttl_seconds)


def truncate_wal(store: Store) -> bool:
    """After an erasure, checkpoint and truncate SQLite's write-ahead log, which still holds pages
    as they were before it; True when done (a reader in the way leaves it for the next pass)."""
    if store.checkpointer is None:
        return True
    erasure.wal_dirty = False
    busy, _frames, _done = store.checkpointer.checkpoint(truncate=True)
    if busy:
        erasure.wal_dirty = True
        return False
    return True


async def _loop(store: Store, data_dir: Path | None, ttl_seconds: int) -> None:
    last_retention = 0.0
    while True:
        await anyio.sleep(INTERVAL_SECONDS)
        try:
            await anyio.to_thread.run_sync(sweep, store, data_dir)
            if time.monotonic() - last_retention >= RETENTION_SECONDS:
                last_retention = time.monotonic()
                await anyio.to_thread.run_sync(sweep_retention, store, ttl_seconds)
            if erasure.wal_dirty:
                await anyio.to_thread.run_sync(truncate_wal, store)
        except Exception:
            log.exception("audit checkpoint sweep failed; retrying in %ss", INTERVAL_SECONDS)


@contextlib.asynccontextmanager
async def audit_sweeper(
    store: Store, data_dir: Path | None, undo_ttl_seconds: int = UNDO_TTL_SECONDS
) -> AsyncIterator[None]:
    """A lifespan part: the sweep runs in the background while the app serves."""
    async with anyio.create_task_group() as tasks:
        tasks.start_soon(_loop, store, data_dir, undo_ttl_seconds)
        yield
        tasks.cancel_scope.cancel()
