"""Replay: re-execute a run's recorded tool calls against today's state.

A dry replay runs each call's own handler inside a savepoint of the replaying call's transaction and
rolls it back: the engine's dry-run (the very handler, undone), each call rolled back on its own. Each call is
compared with what it answered when it ran, ids and timestamps normalized: ``same``, ``differs``
(a JSON diff of the result and of the records touched) or ``would_fail`` (the error it would get).
A real replay (``execute``) calls the operations through the engine as a new run, with idempotency
keys derived from the original run and seq, so retrying a replay never applies a call twice."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from typing import Any

import sqlalchemy as sa

from krabs.audit.log import load_payloads
from krabs.contract.errors import KrabsError
from krabs.contract.ids import new_id
from krabs.contract.registry import REGISTRY
from krabs.engine.uow import UnitOfWork
from krabs.engine.validation import validate_args
from krabs.runs.events import RunEvent, read_events
from krabs.store.tables import audit_actions

#: Operations never re-executed: replaying a replay would recurse.
NOT_REPLAYED = frozenset({"run.replay"})
#: Undos reverted particular writes of their own time. A real replay never runs one again (it would
#: undo blindly whatever those rows hold today); a dry replay still reports what it would do.
UNDOES = frozenset({"run.undo", "action.undo"})
_ID = re.compile(r"^[a-z]+_[0-9A-Z]{16,40}$")
_TS = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?Z$")
_SECRET = re.compile(r"^(undo_|krabs_sk_)\S+$")
SAVEPOINT = "krabs_replay"
#: How many diff entries one call reports at most.
MAX_DIFF = 50


def normalize(value: Any) -> Any:
    """``value`` with ids, timestamps and one-time secrets replaced by placeholders."""
    if isinstance(value, dict):
        return {k: normalize(v) for k, v in value.items()}
    if isinstance(value, list):
        return [normalize(v) for v in value]
    if isinstance(value, str):
        if _ID.match(value):
            return "<id:" + value.split("_", 1)[0] + ">"
        if _TS.match(value):
            return "<timestamp>"
        if _SECRET.match(value):
            return "<secret>"
    return value


def json_diff(before: Any, after: Any, path: str = "") -> list[dict[str, Any]]:
    """Leaf-level differences: ``[{path, before, after}]`` (a missing side is absent)."""
    if isinstance(before, dict) and isinstance(after, dict):
        out: list[dict[str, Any]] = []
        for key in sorted(set(before) | set(after), key=str):
            sub = f"{path}.{key}" if path else str(key)
            if key not in before:
                out.append({"path": sub, "after": after[key]})
            elif key not in after:
                out.append({"path": sub, "before": before[key]})
            else:
                out += json_diff(before[key], after[key], sub)
        return out
    if isinstance(before, list) and isinstance(after, list) and len(before) == len(after):
        return [
            d
            for i, (b, a) in enumerate(zip(before, after, strict=True))
            for d in json_diff(b, a, f"{path}[{i}]")
        ]
    return [] if before == after else [{"path": path or "$", "before": before, "after": after}]


def touched_shape(changes: list[dict[str, Any]]) -> list[str]:
    """What a call touched, ids aside: sorted ``table:action`` entries."""
    out = []
    for ch in changes:
        if "action" in ch:
            out.append(f"{ch.get('table')}:{ch['action']}")
        elif "before" in ch or "after" in ch:
            kind = (
                "create"
                if ch.get("before") is None
                else "delete"
                if ch.get("after") is None
                else "update"
            )
            out.append(f"{ch.get('table')}:{kind}")
        else:
            out.append(f"{ch.get('table')}:{ch.get('kind', 'bulk')}")
    return sorted(out)


def tool_calls(
    conn: sa.Connection, account_id: str, run_id: str, after_seq: int
) -> Iterator[RunEvent]:
    """The run's ``tool_call`` events after ``after_seq``, in order, read in pages."""
    while True:
        events = read_events(conn, account_id, run_id, after_seq, 1000)
        if not events:
            return
        for event in events:
            if event.type == "tool_call":
                yield event
        after_seq = events[-1].seq


def _recorded_changes(
    conn: sa.Connection, account_id: str, action_ids: list[str]
) -> dict[str, list[dict[str, Any]]]:
    """Per action id, the row changes its audit payload recorded."""
    if not action_ids:
        return {}
    rows = conn.execute(
        sa.select(audit_actions.c.id, audit_actions.c.payload_digest).where(
            audit_actions.c.account_id == account_id, audit_actions.c.id.in_(action_ids)
        )
    ).all()
    opened = load_payloads(conn, account_id, [r.payload_digest for r in rows])
    return {
        r.id: list(opened[r.payload_digest][0].get("changes") or [])
        for r in rows
        if r.payload_digest in opened
    }


def _error(exc: KrabsError) -> dict[str, Any]:
    return {"code": exc.code, "message": exc.message, "param": exc.param}


class DryReplay:
    """Replays calls on one unit of work's connection; each call in its own rolled-back savepoint."""

    def __init__(self, uow: UnitOfWork) -> None:
        self.uow = uow

    def page(self, run_id: str, after_seq: int, limit: int) -> dict[str, Any]:
        events = []
        for event in tool_calls(self.uow.conn, self.uow.account_id, run_id, after_seq):
            events.append(event)
            if len(events) > limit:
                break
        has_more = len(events) > limit
        events = events[:limit]
        recorded = [(e, json.loads(e.data)) for e in events]
        ids = [str(d["action_id"]) for _e, d in recorded if d.get("action_id")]
        changes = _recorded_changes(self.uow.conn, self.uow.account_id, ids)
        # One savepoint for the page, rolled back to after every call: plain driver SQL, because
        # SQLAlchemy compiles a nested transaction's statements anew each time.
        self.uow.conn.exec_driver_sql(f"SAVEPOINT {SAVEPOINT}")
        try:
            items = [self.one(e, d, changes.get(str(d.get("action_id")))) for e, d in recorded]
        finally:
            self.uow.conn.exec_driver_sql(f"ROLLBACK TO SAVEPOINT {SAVEPOINT}")
            self.uow.conn.exec_driver_sql(f"RELEASE SAVEPOINT {SAVEPOINT}")
        summary = {"calls": len(items), "same": 0, "differs": 0, "would_fail": 0, "skipped": 0}
        for item in items:
            summary[item["status"]] += 1
        return {
            "object": "run_replay",
            "run_id": run_id,
            "dry_run": True,
            "items": items,
            "summary": summary,
            "has_more": has_more,
            "next_after_seq": items[-1]["seq"] if has_more and items else None,
        }

    def one(
        self, event: RunEvent, data: dict[str, Any], changes: list[dict[str, Any]] | None
    ) -> dict[str, Any]:
        op_name = event.op or str(data.get("op") or "")
        item: dict[str, Any] = {
            "seq": event.seq,
            "op": op_name,
            "original_action_id": event.action_id,
        }
        recorded_args = data.get("args")
        args: dict[str, Any] = recorded_args if isinstance(recorded_args, dict) else {}
        skip = self._skip_reason(op_name, data, args)
        if skip:
            return {**item, "status": "skipped", "reason": skip}
        try:
            result, touched = self.execute(op_name, dict(args))
        except KrabsError as exc:
            return self._failed(item, data, _error(exc))
        if data.get("error"):
            return {
                **item,
                "status": "differs",
                "diff": [{"path": "error", "before": data["error"], "after": None}],
            }
        diff = json_diff(normalize(data.get("result")), normalize(result))
        if changes is not None or touched:
            was, now = touched_shape(changes or []), touched_shape(touched)
            if was != now:
                diff.append({"path": "touched", "before": was, "after": now})
        if not diff:
            return {**item, "status": "same"}
        return {**item, "status": "differs", "diff": diff[:MAX_DIFF], "diff_count": len(diff)}

    @staticmethod
    def _failed(
        item: dict[str, Any], data: dict[str, Any], error: dict[str, Any]
    ) -> dict[str, Any]:
        was = data.get("error")
        if isinstance(was, dict) and was.get("code") == error["code"]:
            return {**item, "status": "same", "error": error}
        return {**item, "status": "would_fail", "error": error}

    def _skip_reason(self, op_name: str, data: dict[str, Any], args: dict[str, Any]) -> str | None:
        if op_name in NOT_REPLAYED:
            return f"{op_name} is not replayed"
        if data.get("dry_run") or args.get("dry_run") is True:
            return "the original call was a dry-run"
        if any(isinstance(v, dict) and set(v) == {"sha256", "chars"} for v in args.values()):
            return "its arguments were recorded as a digest, not in full"
        return None

    def execute(
        self, op_name: str, raw: dict[str, Any]
    ) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        """Run one call's handler in a savepoint, then roll it back; its result and touched rows."""
        op = REGISTRY.get(op_name)
        if op is None:
            raise KrabsError("unknown_operation", f"no operation named {op_name[:100]!r} any more")
        if not self.uow.principal.allows(op.scope):
            raise KrabsError(
                "forbidden", f"{op.name} needs the {op.scope!r} scope; this key lacks it"
            )
        raw.pop("dry_run", None)
        args = validate_args(op.input, raw, op.name)
        child = UnitOfWork(
            conn=self.uow.conn,
            principal=self.uow.principal,
            run_id=None,
            dialect=self.uow.dialect,
            default_region=self.uow.default_region,
            data_dir=None,
        )
        if op.mutates:
            child.action_id = new_id("action")
        clean = False
        try:
            result = op.handler(child, args)
            clean = not op.mutates  # a read that succeeded wrote nothing to undo
            return op.redacted(result), child.touched()
        except sa.exc.IntegrityError:
            raise KrabsError(
                "conflict", "the write would conflict with a uniqueness rule"
            ) from None
        finally:
            if not clean:
                self.uow.conn.exec_driver_sql(f"ROLLBACK TO SAVEPOINT {SAVEPOINT}")


CallFn = Callable[[str, dict[str, Any], str], dict[str, Any]]


def not_executed(op: str, data: dict[str, Any]) -> str | None:
    """Why a real replay skips this recorded call (its per-call ``skipped`` reason), or None."""
    if op in NOT_REPLAYED:
        return f"{op} is not replayed"
    if data.get("dry_run"):
        return "the original call was a dry-run"
    if op in UNDOES:
        return (
            f"{op} is not executed again: it reverted writes of its own time, and a replay does "
            "not undo blindly (undo the replay's own run with `krabs runs undo` if needed)"
        )
    return None


def replay_key(run_id: str, seq: int) -> str:
    """The idempotency key of a real replay's call: same original call, same key."""
    return f"replay:{run_id}:{seq}"


def execute(
    events: list[tuple[int, str, dict[str, Any]]], source_run: str, call: CallFn
) -> Iterator[dict[str, Any]]:
    """Execute recorded calls ``(seq, op, args)`` for real through ``call(op, args, key)`` (which
    attaches them to the new run and returns ``{"ok", "result"|"error"}``), one item per call."""
    for seq, op, args in events:
        args = {k: v for k, v in args.items() if k != "dry_run"}
        reply = call(op, args, replay_key(source_run, seq))
        status = "executed" if reply.get("ok") else "failed"
        yield {
            "seq": seq,
            "op": op,
            "status": status,
            **{k: v for k, v in reply.items() if k != "ok"},
        }


def learn_ids(original: Any, replayed: Any, mapping: dict[str, str]) -> None:
    """Note which id a replayed call made in place of each id the original call made (same place in
    the same result shape), so later calls that used the old id use the new one."""
    if isinstance(original, dict) and isinstance(replayed, dict):
        for key, value in original.items():
            if key in replayed:
                learn_ids(value, replayed[key], mapping)
    elif isinstance(original, list) and isinstance(replayed, list):
        for a, b in zip(original, replayed, strict=False):
            learn_ids(a, b, mapping)
    elif (
        isinstance(original, str)
        and isinstance(replayed, str)
        and original != replayed
        and _ID.match(original)
        and _ID.match(replayed)
        and original.split("_", 1)[0] == replayed.split("_", 1)[0]
    ):
        mapping.setdefault(original, replayed)


def remap(value: Any, mapping: dict[str, str]) -> Any:
    """``value`` with every id the replay has replaced swapped for its replacement."""
    if not mapping:
        return value
    if isinstance(value, dict):
        return {k: remap(v, mapping) for k, v in value.items()}
    if isinstance(value, list):
        return [remap(v, mapping) for v in value]
    if isinstance(value, str):
        return mapping.get(value, value)
    return value
