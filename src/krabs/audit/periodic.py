"""The signed log's background work while a server runs: every 15 s, sign a checkpoint for each
account whose log grew and whose last checkpoint is 60 s old (the write path only checks when the
next write comes)."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator
from pathlib import Path

import anyio
import anyio.to_thread

from krabs.audit.checkpoint import due, sign_checkpoint
from krabs.store.db import Store

INTERVAL_SECONDS = 15.0
log = logging.getLogger("krabs.audit")


def sweep(store: Store, data_dir: Path | None) -> list[str]:
    """Checkpoint every account that is due; returns their ids."""
    with store.connect(write=False) as conn:
        accounts = due(conn)
    for account_id in accounts:
        with store.transaction(write=True) as conn:
            sign_checkpoint(conn, account_id, data_dir, reason="time")
    return accounts


async def _loop(store: Store, data_dir: Path | None) -> None:
    while True:
        await anyio.sleep(INTERVAL_SECONDS)
        try:
            await anyio.to_thread.run_sync(sweep, store, data_dir)
        except Exception:
            log.exception("audit checkpoint sweep failed; retrying in %ss", INTERVAL_SECONDS)


@contextlib.asynccontextmanager
async def audit_sweeper(store: Store, data_dir: Path | None) -> AsyncIterator[None]:
    """A lifespan part: the sweep runs in the background while the app serves."""
    async with anyio.create_task_group() as tasks:
        tasks.start_soon(_loop, store, data_dir)
        yield
        tasks.cancel_scope.cancel()
