"""The 24 h retention of undo images: the sealed before-images (``krabs.audit.sealing``) of actions
older than the undo window are dropped, so personal data a row no longer holds does not outlive the
window in the log. The commitment in the record covers them only through the payload's main part,
so verification still passes; undoing such an action is ``undo_expired``. Payloads from before
sealing cannot be split and keep their images."""

from __future__ import annotations

import datetime as dt

import sqlalchemy as sa

from krabs.engine.uow import utcnow
from krabs.store.tables import audit_payloads

UNDO_TTL_SECONDS = 24 * 3600


def cutoff(now: str | None = None, ttl_seconds: int = UNDO_TTL_SECONDS) -> str:
    """Images of actions before this time are dropped (``now`` is the clock hook tests set)."""
    moment = dt.datetime.fromisoformat((now or utcnow()).replace("Z", "+00:00"))
    return (moment - dt.timedelta(seconds=ttl_seconds)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def drop_undo_images(
    conn: sa.Connection, now: str | None = None, ttl_seconds: int = UNDO_TTL_SECONDS
) -> int:
    """Drop every account's undo images older than the window; returns how many payloads."""
    p = audit_payloads
    done = conn.execute(
        p.update()
        .where(p.c.images_at.is_not(None), p.c.images_at < cutoff(now, ttl_seconds))
        .values(undo=None, images_at=None)
    )
    return int(done.rowcount or 0)
