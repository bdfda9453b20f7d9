"""Approval gates as operations: set who needs a human for what, list and read the approvals a gated
call asked for, and decide one (``POST /v1/runs/{id}/input`` is the same operation)."""

from __future__ import annotations

from typing import Any, Literal

import sqlalchemy as sa
from pydantic import Field, model_validator

from krabs.contract.errors import KrabsError, not_found
from krabs.contract.ids import new_id
from krabs.contract.models import Args, ListArgs, ListOf, Out, id_field, page
from krabs.contract.registry import REGISTRY, Example, operation
from krabs.engine.uow import UnitOfWork
from krabs.ops.common import newest_first
from krabs.runs.approval import emit, forget_policies
from krabs.store.tables import api_keys, approval_policies, approvals, runs

OP_PATTERN = r"^(\*|[A-Za-z_]+\.(\*|[a-z_]+))$"


def _optional_id(prefix: str, description: str) -> Any:
    return Field(
        None, pattern=rf"^{prefix}_[0-9A-Za-z]{{1,40}}$", max_length=48, description=description
    )


class Rule(Args):
    op: str = Field(
        pattern=OP_PATTERN,
        max_length=80,
        description="A mutating operation (`contact.delete`), every one of a noun (`contact.*`) "
        "or every mutation (`*`).",
    )
    min_rows: int | None = Field(
        None,
        ge=1,
        le=10_000_000,
        description="Gate only calls carrying at least this many rows (a CSV's data lines, the "
        "longest list argument), e.g. contact.import_csv above 500 rows.",
    )


class PolicySet(Args):
    agent_id: str | None = Field(
        None,
        pattern=r"^[A-Za-z0-9_.:-]{1,80}$",
        description="The agent the policy binds; omit with key_id for an account-wide policy.",
    )
    key_id: str | None = _optional_id("key", "The API key the policy binds (instead of an agent).")
    rules: list[Rule] = Field(
        max_length=100,
        description="The operations that need a human; an empty list removes the policy.",
    )

    @model_validator(mode="after")
    def _one_subject(self) -> PolicySet:
        if self.agent_id is not None and self.key_id is not None:
            raise ValueError("give agent_id or key_id, not both (omit both for the whole account)")
        return self


class PolicyOut(Out):
    object: Literal["approval_policy"] = "approval_policy"
    id: str | None
    subject: str
    rules: list[dict[str, Any]]
    updated_at: str | None
    deleted: bool = False


def _policy(row: dict[str, Any], deleted: bool = False) -> dict[str, Any]:
    return {
        "object": "approval_policy",
        "id": row["id"],
        "subject": row["subject"],
        "rules": row["rules"],
        "updated_at": row["updated_at"],
        "deleted": deleted,
    }


def _check_rule(rule: Rule, index: int) -> None:
    if rule.op == "*" or rule.op.endswith(".*"):
        return
    known = REGISTRY.get(rule.op)
    if known is None or not known.mutates:
        raise KrabsError(
            "invalid_argument",
            f"{rule.op} is not a mutating operation; name one from GET /v1/schema (e.g. "
            "contact.delete), a noun's every mutation (contact.*) or * for all",
            param=f"rules[{index}].op",
        )


@operation(
    "approval_policy.set",
    summary="Set which operations need a human approval, for an agent, a key or the account.",
    input=PolicySet,
    output=PolicyOut,
    mutates=True,
    scope="admin",
    added_in="1.1",
    errors=("not_found",),
    examples=(
        Example({"agent_id": "agent_drafts", "rules": [{"op": "contact.delete"}]}),
        Example({"rules": [{"op": "contact.import_csv", "min_rows": 500}]}),
    ),
)
def set_policy(uow: UnitOfWork, args: PolicySet) -> dict[str, Any]:
    """Replaces the whole policy of its subject: `agent_id`, `key_id`, or (neither) every caller of
    the account. A call matching a rule is not executed: it answers `approval_required` with an
    `approval_id` until a human decides with `approval.decide`. An empty `rules` list removes the
    policy. Dry-runs are never gated."""
    for i, rule in enumerate(args.rules):
        _check_rule(rule, i)
    if args.key_id is not None:
        key = uow.fetch(api_keys, args.key_id)
        if key is None:
            raise not_found("api key", args.key_id, "key_id")
        subject = f"key:{args.key_id}"
    else:
        subject = f"agent:{args.agent_id}" if args.agent_id else "*"
    rules = [r.model_dump(exclude_none=True) for r in args.rules]
    t = approval_policies
    found = uow.execute(
        sa.select(t).where(t.c.account_id == uow.account_id, t.c.subject == subject)
    ).first()
    forget_policies(uow.account_id)
    if found is not None:
        before = dict(found._mapping)
        if not rules:
            uow.delete(t, before)
            return _policy(before, deleted=True)
        after = uow.update(t, before, {"rules": rules, "updated_at": uow.now})
        return _policy(after)
    if not rules:
        return {**_policy({"id": None, "subject": subject, "rules": [], "updated_at": None})}
    row = uow.insert(
        t,
        {
            "id": new_id("approval_policy"),
            "subject": subject,
            "rules": rules,
            "updated_by": uow.principal.key_id or uow.principal.agent_id,
            "created_at": uow.now,
            "updated_at": uow.now,
        },
    )
    return _policy(row)


class PolicyList(ListArgs):
    pass


@operation(
    "approval_policy.list",
    summary="List the approval policies of the account.",
    input=PolicyList,
    output=ListOf[PolicyOut],
    mutates=False,
    added_in="1.1",
    examples=(Example({}),),
)
def list_policies(uow: UnitOfWork, args: PolicyList) -> dict[str, Any]:
    """Each policy names its subject (`*`, `agent:<id>` or `key:<id>`) and its rules."""
    t = approval_policies
    rows = newest_first(
        uow,
        sa.select(t).where(t.c.account_id == uow.account_id),
        t,
        args.starting_after,
        args.limit,
    )
    return page([_policy(r) for r in rows], args.limit)


class ApprovalOut(Out):
    object: Literal["approval"] = "approval"
    id: str
    run_id: str | None
    op: str
    args: dict[str, Any]
    reason: str
    status: Literal["pending", "approved", "rejected"]
    agent_id: str
    key_id: str | None
    idempotency_key: str | None
    decided_by: str | None
    note: str | None
    created_at: str
    decided_at: str | None
    consumed_at: str | None


def approval_object(row: dict[str, Any]) -> dict[str, Any]:
    names = ApprovalOut.model_fields
    return {"object": "approval", **{k: v for k, v in row.items() if k in names}}


class ApprovalGet(Args):
    id: str = id_field("apr", "The approval id (`approval_id` of an `approval_required` error).")


@operation(
    "approval.get",
    summary="Read one approval: the gated call, its status and who decided.",
    input=ApprovalGet,
    output=ApprovalOut,
    mutates=False,
    added_in="1.1",
    errors=("not_found",),
    examples=(Example({"id": "apr_01HG7Z4X9Q8M2N7P3R5T6V8W"}),),
)
def get_approval(uow: UnitOfWork, args: ApprovalGet) -> dict[str, Any]:
    """`args` are the gated call's arguments, so a human sees exactly what they approve."""
    row = uow.fetch(approvals, args.id)
    if row is None:
        raise not_found("approval", args.id)
    return approval_object(row)


class ApprovalList(ListArgs):
    status: Literal["pending", "approved", "rejected"] | None = Field(
        None, description="Only approvals in this status."
    )
    run_id: str | None = _optional_id("run", "Only approvals asked for in this run.")
    op: str | None = Field(None, max_length=80, description="Only approvals of this operation.")


@operation(
    "approval.list",
    summary="List approvals, newest first, by status, run or operation.",
    input=ApprovalList,
    output=ListOf[ApprovalOut],
    mutates=False,
    added_in="1.1",
    examples=(Example({"status": "pending"}),),
)
def list_approvals(uow: UnitOfWork, args: ApprovalList) -> dict[str, Any]:
    """Pending approvals are what a human has to decide with `approval.decide`."""
    t = approvals
    q = sa.select(t).where(t.c.account_id == uow.account_id)
    if args.status:
        q = q.where(t.c.status == args.status)
    if args.run_id:
        q = q.where(t.c.run_id == args.run_id)
    if args.op:
        q = q.where(t.c.op == args.op)
    rows = newest_first(uow, q, t, args.starting_after, args.limit)
    return page([approval_object(r) for r in rows], args.limit)


class Decide(Args):
    id: str = id_field("apr", "The approval to decide (`approval_id` of the 202 answer).")
    decision: Literal["approve", "reject"]
    note: str | None = Field(
        None, max_length=4000, description="Why; shown to the agent on a rejection."
    )
    run_id: str | None = _optional_id("run", "If given, the approval must belong to this run.")


@operation(
    "approval.decide",
    summary="Approve or reject a gated call; the run goes back to open.",
    input=Decide,
    output=ApprovalOut,
    mutates=True,
    scope="admin",
    added_in="1.1",
    errors=("not_found", "conflict"),
    examples=(
        Example({"id": "apr_01HG7Z4X9Q8M2N7P3R5T6V8W", "decision": "approve"}),
        Example({"id": "apr_01HG7Z4X9Q8M2N7P3R5T6V8W", "decision": "reject", "note": "keep them"}),
    ),
)
def decide(uow: UnitOfWork, args: Decide) -> dict[str, Any]:
    """Also `POST /v1/runs/{run_id}/input` with `{approval_id, decision, note}`. After an approval the
    agent retries the call with the same Idempotency-Key (or, without one, the same arguments in the
    same run) and it executes once; after a rejection the retry answers `approval_rejected`. A
    decided approval cannot be decided again (`conflict`)."""
    row = uow.fetch(approvals, args.id)
    if row is None or (args.run_id is not None and row["run_id"] != args.run_id):
        raise not_found("approval", args.id)
    if row["status"] != "pending":
        raise KrabsError(
            "conflict",
            f"approval {args.id} was already {row['status']} by {row['decided_by']}; "
            "a gated call asks for a new approval when retried with a new Idempotency-Key",
            param="id",
        )
    status = "approved" if args.decision == "approve" else "rejected"
    who = uow.principal.agent_id + (f"/{uow.principal.key_id}" if uow.principal.key_id else "")
    after = uow.update(
        approvals,
        row,
        {"status": status, "decided_by": who, "note": args.note, "decided_at": uow.now},
    )
    run_id = row["run_id"]
    if run_id:
        _resume(uow, run_id, args, who)
    return approval_object(after)


def _resume(uow: UnitOfWork, run_id: str, args: Decide, who: str) -> None:
    emit(
        uow.conn,
        account_id=uow.account_id,
        run_id=run_id,
        type="run.input",
        data={"approval_id": args.id, "decision": args.decision, "note": args.note, "by": who},
    )
    waiting = uow.execute(
        sa.select(sa.func.count())
        .select_from(approvals)
        .where(
            approvals.c.account_id == uow.account_id,
            approvals.c.run_id == run_id,
            approvals.c.status == "pending",
        )
    ).scalar()
    run = uow.fetch(runs, run_id)
    if not waiting and run is not None and run["status"] == "waiting_for_input":
        uow.update(runs, run, {"status": "open", "updated_at": uow.now})
