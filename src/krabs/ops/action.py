"""The audit log as operations: read an action, list them, undo one."""

from __future__ import annotations

import hashlib
import json
from typing import Any, Literal

import sqlalchemy as sa
from pydantic import Field, model_validator

from krabs.audit.log import load_payload
from krabs.audit.undo import undo_changes
from krabs.contract.errors import KrabsError, not_found
from krabs.contract.models import Args, ListArgs, ListOf, Out, Timestamp, id_field, page
from krabs.contract.registry import Example, operation
from krabs.engine.uow import UnitOfWork
from krabs.store.tables import audit_actions, audit_targets


class ActionOut(Out):
    object: Literal["action"] = "action"
    id: str
    seq: int
    created_at: str
    op: str
    run_id: str | None
    actor: dict[str, Any]
    targets: list[str]
    args: dict[str, Any] | None = None
    result: dict[str, Any] | None = None
    changes: list[dict[str, Any]] | None = None
    hash: str
    prev_hash: str
    record: str = Field(description="The exact RFC 8785 bytes that were hashed.")
    undo_of: str | None
    undone_by: str | None
    undoable_until: str | None


def _undone_by(uow: UnitOfWork, ids: list[str]) -> dict[str, str]:
    if not ids:
        return {}
    t = audit_actions
    rows = uow.execute(
        sa.select(t.c.undo_of, t.c.id).where(t.c.account_id == uow.account_id, t.c.undo_of.in_(ids))
    ).all()
    return {r.undo_of: r.id for r in rows}


def action_object(
    uow: UnitOfWork, row: Any, undone_by: str | None, *, full: bool
) -> dict[str, Any]:
    record = json.loads(row.record)
    out: dict[str, Any] = {
        "object": "action",
        "id": row.id,
        "seq": int(row.seq),
        "created_at": row.created_at,
        "op": row.op,
        "run_id": row.run_id,
        "actor": record["actor"],
        "targets": record["targets"],
        "hash": row.hash,
        "prev_hash": row.prev_hash,
        "record": row.record,
        "undo_of": row.undo_of,
        "undone_by": undone_by,
        "undoable_until": row.undo_expires_at,
    }
    if full:
        payload = load_payload(uow.conn, uow.account_id, row.payload_digest)
        out.update(args=payload["args"], result=payload["result"], changes=payload["changes"])
    return out


class ActionGet(Args):
    id: str = id_field("act", "The action id (`X-Krabs-Action` on the write's response).")


@operation(
    "action.get",
    summary="Read one audit action with its arguments, result and row images.",
    input=ActionGet,
    output=ActionOut,
    mutates=False,
    errors=("not_found",),
    examples=(Example({"id": "act_01HG7Z4X9Q8M2N7P3R5T6V8W"}),),
)
def get(uow: UnitOfWork, args: ActionGet) -> dict[str, Any]:
    """Includes the before- and after-image of every row the action touched."""
    row = uow.execute(
        sa.select(audit_actions).where(
            audit_actions.c.id == args.id, audit_actions.c.account_id == uow.account_id
        )
    ).first()
    if row is None:
        raise not_found("action", args.id)
    return action_object(uow, row, _undone_by(uow, [row.id]).get(row.id), full=True)


class ActionList(ListArgs):
    op: str | None = Field(
        None, max_length=80, description="Only this operation, e.g. contact.delete."
    )
    target: str | None = Field(
        None, max_length=64, description="Only actions that touched this id."
    )
    run: str | None = Field(None, max_length=64, description="Only actions of this run.")
    since: Timestamp | None = Field(None, description="Only actions at or after this time.")


@operation(
    "action.list",
    summary="List audit actions, newest first, by operation, target, run or time.",
    input=ActionList,
    output=ListOf[ActionOut],
    mutates=False,
    examples=(
        Example({"op": "contact.delete"}),
        Example({"target": "ct_01HG7Z4X9Q8M2N7P3R5T6V8W"}),
    ),
)
def list_(uow: UnitOfWork, args: ActionList) -> dict[str, Any]:
    """The cursor is an action id; order is the chain's sequence, newest first."""
    t = audit_actions
    q = sa.select(t).where(t.c.account_id == uow.account_id)
    if args.op:
        q = q.where(t.c.op == args.op)
    if args.run:
        q = q.where(t.c.run_id == args.run)
    if args.since:
        q = q.where(t.c.created_at >= args.since)
    if args.target:
        q = q.where(
            t.c.seq.in_(
                sa.select(audit_targets.c.seq).where(
                    audit_targets.c.account_id == uow.account_id,
                    audit_targets.c.target_id == args.target,
                )
            )
        )
    if args.starting_after:
        cursor = uow.execute(
            sa.select(t.c.seq).where(
                t.c.account_id == uow.account_id, t.c.id == args.starting_after
            )
        ).scalar()
        if cursor is None:
            raise KrabsError(
                "invalid_argument",
                "starting_after is not an action of this account",
                param="starting_after",
            )
        q = q.where(t.c.seq < cursor)
    rows = uow.execute(q.order_by(t.c.seq.desc()).limit(args.limit + 1)).all()
    undone = _undone_by(uow, [r.id for r in rows])
    return page([action_object(uow, r, undone.get(r.id), full=False) for r in rows], args.limit)


class ActionUndo(Args):
    undo_token: str | None = Field(
        None, max_length=100, description="From a destructive call's result."
    )
    action_id: str | None = Field(
        None, max_length=64, description="Any action (needs the admin scope)."
    )
    force: bool = Field(False, description="Overwrite rows that changed since the action.")

    @model_validator(mode="after")
    def _one_of(self) -> ActionUndo:
        if (self.undo_token is None) == (self.action_id is None):
            raise ValueError("give exactly one of undo_token or action_id")
        return self


class UndoOut(Out):
    object: Literal["undo"] = "undo"
    undone_action_id: str
    restored: list[dict[str, Any]]
    conflicts: list[dict[str, Any]]
    undo_token: str | None = None
    undo_expires_at: str | None = None


@operation(
    "action.undo",
    summary="Reverse an action: restore every row it touched (undo tokens last 24 h).",
    input=ActionUndo,
    output=UndoOut,
    mutates=True,
    destructive=True,
    errors=("not_found", "forbidden", "undo_expired", "undo_conflict", "undo_used"),
    examples=(
        Example({"undo_token": "undo_3kq9…"}),
        Example({"action_id": "act_01HG7Z4X9Q8M2N7P3R5T6V8W", "force": True}),
    ),
)
def undo(uow: UnitOfWork, args: ActionUndo) -> dict[str, Any]:
    """Restores the before-images. Refuses with `undo_conflict` if a row changed since (unless
    `force`), `undo_expired` after 24 h, `undo_used` if already undone. The undo is itself an action
    and returns its own `undo_token` (redo)."""
    t = audit_actions
    if args.undo_token is not None:
        digest = hashlib.sha256(args.undo_token.encode()).hexdigest()
        row = uow.execute(
            sa.select(t).where(t.c.account_id == uow.account_id, t.c.undo_token_hash == digest)
        ).first()
        if row is None:
            raise KrabsError("not_found", "unknown undo_token", param="undo_token")
        if row.undo_expires_at is not None and row.undo_expires_at <= uow.now:
            raise KrabsError(
                "undo_expired",
                f"this undo token expired at {row.undo_expires_at}",
                param="undo_token",
            )
    else:
        if not uow.principal.allows("admin"):
            raise KrabsError(
                "forbidden",
                "undo by action_id needs the admin scope; use the undo_token",
                param="action_id",
            )
        row = uow.execute(
            sa.select(t).where(t.c.account_id == uow.account_id, t.c.id == args.action_id)
        ).first()
        if row is None:
            raise not_found("action", str(args.action_id), "action_id")
    if _undone_by(uow, [row.id]):
        raise KrabsError(
            "undo_used",
            f"action {row.id} was already undone",
            param="undo_token" if args.undo_token else "action_id",
        )
    uow.undo_of = row.id
    report = undo_changes(uow, row, force=args.force)
    return {"object": "undo", "undone_action_id": row.id, **report}
