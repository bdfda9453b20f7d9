"""Approval gates: a policy (account-wide, per agent or per key) names operations that need a human.
A gated call does not run: it records a pending approval, puts its run in ``waiting_for_input`` and
answers ``approval_required`` (202) with the ``approval_id``. ``run.input`` decides; the caller's
retry (same Idempotency-Key, or same arguments in the same run) then executes, or gets
``approval_rejected``. Dry-runs are never gated: they change nothing."""

from __future__ import annotations

import threading
import time
from typing import Any

import sqlalchemy as sa

from krabs.contract.errors import KrabsError
from krabs.contract.ids import new_id
from krabs.engine.context import Call, Outcome, Principal
from krabs.engine.steps import Next, fingerprint
from krabs.engine.uow import utcnow
from krabs.runs.events import append_event, take_pending
from krabs.runs.hub import hub_for
from krabs.runs.record import after_commit
from krabs.store.db import Store
from krabs.store.tables import approval_policies, approvals, runs

#: How long a node trusts its cached policies; ``approval_policy.set`` clears this node's at once.
POLICY_TTL_SECONDS = 1.0
_cache: dict[str, tuple[float, list[tuple[str, list[dict[str, Any]]]]]] = {}
_cache_lock = threading.Lock()


def forget_policies(account_id: str) -> None:
    with _cache_lock:
        _cache.pop(account_id, None)


def subjects_of(principal: Principal) -> list[str]:
    out = ["*", f"agent:{principal.agent_id}"]
    if principal.key_id:
        out.append(f"key:{principal.key_id}")
    return out


def call_size(args: dict[str, Any]) -> int:
    """How many rows a call carries: the longest list argument, or the data lines of a text one
    (a CSV's lines after its header)."""
    size = 1
    for value in args.values():
        if isinstance(value, list):
            size = max(size, len(value))
        elif isinstance(value, str) and "\n" in value:
            lines = [line for line in value.splitlines() if line.strip()]
            size = max(size, len(lines) - 1)
    return size


def _policies(store: Store, account_id: str) -> list[tuple[str, list[dict[str, Any]]]]:
    now = time.monotonic()
    cached = _cache.get(account_id)
    if cached is not None and now - cached[0] < POLICY_TTL_SECONDS:
        return cached[1]
    with store.connect(write=False) as conn:
        rows = conn.execute(
            sa.select(approval_policies.c.subject, approval_policies.c.rules).where(
                approval_policies.c.account_id == account_id
            )
        ).all()
    found = [(str(r.subject), list(r.rules)) for r in rows]
    with _cache_lock:
        _cache[account_id] = (now, found)
    return found


def matching_rule(
    policies: list[tuple[str, list[dict[str, Any]]]],
    principal: Principal,
    op: str,
    args: dict[str, Any],
) -> tuple[str, dict[str, Any]] | None:
    """The first rule that gates ``op`` for this caller, with the subject it came from."""
    subjects = subjects_of(principal)
    for subject, rules in policies:
        if subject not in subjects:
            continue
        for rule in rules:
            if rule.get("op") not in (op, f"{op.split('.', 1)[0]}.*", "*"):
                continue
            min_rows = rule.get("min_rows")
            if min_rows is not None and call_size(args) < int(min_rows):
                continue
            return subject, rule
    return None


def _reason(subject: str, rule: dict[str, Any], op: str) -> str:
    who = "every caller" if subject == "*" else subject.replace(":", " ")
    rows = f" with {rule['min_rows']} rows or more" if rule.get("min_rows") else ""
    return f"the approval policy for {who} requires a human to approve {op}{rows}"[:300]


#: Never gated, or a policy could lock out the humans who decide and set policies.
UNGATED = frozenset({"approval.decide", "approval_policy.set"})


class ApprovalGate:
    """The engine step, after validation and before idempotency."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def __call__(self, call: Call, next: Next) -> Outcome:
        if not call.op.mutates or call.dry_run or call.run_id is None or call.op.name in UNGATED:
            return next(call)
        raw = call.request.args if isinstance(call.request.args, dict) else {}
        policies = _policies(self.store, call.who.account_id)
        if not policies:
            return next(call)
        rule = matching_rule(policies, call.who, call.op.name, raw)
        if rule is None:
            return next(call)
        found = self._existing(call)
        if found is None:
            raise self._request(call, raw, *rule)
        if found.status == "pending":
            raise _required(found.id, call.run_id, found.reason)
        if found.status == "rejected":
            note = f": {found.note}" if found.note else ""
            raise KrabsError(
                "approval_rejected",
                f"{found.decided_by or 'a human'} rejected this {call.op.name} call{note}"[:1000]
                + "; do not retry it",
                details={"approval_id": found.id},
            )
        outcome = next(call)
        if outcome.ok and found.consumed_at is None:
            with self.store.transaction(write=True) as conn:
                conn.execute(
                    approvals.update()
                    .where(approvals.c.id == found.id, approvals.c.consumed_at.is_(None))
                    .values(consumed_at=utcnow())
                )
        return outcome

    def _existing(self, call: Call) -> Any:
        fp = fingerprint(call.op.name, call.request.args)
        t = approvals
        key = call.request.idempotency_key
        where = [t.c.account_id == call.who.account_id]
        if key:
            where.append(t.c.idempotency_key == key)
        else:
            where += [
                t.c.idempotency_key.is_(None),
                t.c.run_id == call.run_id,
                t.c.fingerprint == fp,
                t.c.consumed_at.is_(None),
            ]
        with self.store.connect(write=False) as conn:
            row = conn.execute(sa.select(t).where(*where).order_by(t.c.id.desc()).limit(1)).first()
        if row is not None and (row.op != call.op.name or row.fingerprint != fp):
            raise KrabsError(
                "idempotency_key_reused",
                f"this Idempotency-Key was first used with {row.op} and other arguments; "
                "use a new key for a new request",
                param="Idempotency-Key",
            )
        return row

    def _request(
        self, call: Call, raw: dict[str, Any], subject: str, rule: dict[str, Any]
    ) -> KrabsError:
        approval_id, now = new_id("approval"), utcnow()
        reason = _reason(subject, rule, call.op.name)
        args = {k: v for k, v in raw.items() if k != "dry_run"}
        with self.store.transaction(write=True) as conn:
            conn.execute(
                approvals.insert().values(
                    id=approval_id,
                    account_id=call.who.account_id,
                    run_id=call.run_id,
                    agent_id=call.who.agent_id,
                    key_id=call.who.key_id,
                    op=call.op.name,
                    fingerprint=fingerprint(call.op.name, call.request.args),
                    idempotency_key=call.request.idempotency_key,
                    args=args,
                    reason=reason,
                    status="pending",
                    created_at=now,
                )
            )
            set_run_status(conn, call.who.account_id, str(call.run_id), "waiting_for_input", now)
            emit(
                conn,
                account_id=call.who.account_id,
                run_id=str(call.run_id),
                type="run.waiting_for_input",
                data={"approval_id": approval_id, "op": call.op.name, "reason": reason},
            )
            pending = take_pending(conn)
        hub = hub_for(self.store.engine)
        after_commit(self.store, lambda: hub.publish(pending))
        return _required(approval_id, call.run_id, reason)


def _required(approval_id: str, run_id: str | None, reason: str) -> KrabsError:
    return KrabsError(
        "approval_required",
        f"{reason}; the call was not executed. A human decides with POST /v1/runs/{run_id}/input "
        f"(run.input) on approval {approval_id}; then retry this call with the same "
        "Idempotency-Key and arguments",
        details={"approval_id": approval_id, "run_id": run_id},
    )


def set_run_status(
    conn: sa.Connection, account_id: str, run_id: str, status: str, now: str
) -> None:
    """Move an open run to ``status`` (open <-> waiting_for_input); a closed run keeps its own."""
    conn.execute(
        runs.update()
        .where(
            runs.c.id == run_id,
            runs.c.account_id == account_id,
            runs.c.status.in_(("open", "waiting_for_input")),
        )
        .values(status=status, updated_at=now)
    )


def emit(conn: sa.Connection, *, account_id: str, run_id: str, type: str, data: Any) -> None:
    """Append a lifecycle event to the run's log (published by whoever commits ``conn``)."""
    append_event(conn, account_id=account_id, run_id=run_id, type=type, data=data)
