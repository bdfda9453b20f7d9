"""Tasks: things to do, with a due time, a status, a priority and an assignee, optionally about a
contact or a deal. Links are checked when set; a contact or deal deleted later stays linked as a
tombstone reference (its id remains, reads and `contact_id` filters still work)."""

from __future__ import annotations

from typing import Any, Literal

import sqlalchemy as sa
from pydantic import Field

from krabs.contract.errors import KrabsError
from krabs.contract.ids import new_id
from krabs.contract.models import (
    Args,
    ListArgs,
    ListOf,
    LongName,
    Name,
    Out,
    Text,
    Timestamp,
    id_field,
    page,
)
from krabs.contract.registry import Example, operation
from krabs.engine.uow import UnitOfWork
from krabs.ops.common import (
    TAG_FILTER,
    check_contact,
    check_deal,
    live_row,
    newest_first,
    tags_of,
    where_tagged,
)
from krabs.ops.identity import RemovedOut
from krabs.store.tables import tasks

Status = Literal["open", "done", "cancelled"]
Priority = Literal["low", "normal", "high", "urgent"]
FIELDS = (
    "title",
    "description",
    "due_at",
    "status",
    "priority",
    "assignee",
    "contact_id",
    "deal_id",
)
#: Fields an update may not clear (send another value instead).
REQUIRED = ("title", "status", "priority")


def link_field(prefix: str, description: str) -> Any:
    """An optional id argument (``id_field`` is for required ones)."""
    return Field(
        None, pattern=rf"^{prefix}_[0-9A-Za-z]{{1,40}}$", max_length=48, description=description
    )


class TagOut(Out):
    id: str
    name: str
    color: str | None


class TaskOut(Out):
    object: Literal["task"] = "task"
    id: str
    title: str
    description: str | None
    due_at: str | None
    status: str
    priority: str
    assignee: str | None
    contact_id: str | None
    deal_id: str | None
    completed_at: str | None
    tags: list[TagOut]
    created_at: str
    updated_at: str


def task_object(row: dict[str, Any], tags: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "object": "task",
        "id": row["id"],
        **{f: row[f] for f in FIELDS},
        "completed_at": row["completed_at"],
        "tags": tags,
        "created_at": row["created_at"],
        "updated_at": row["updated_at"],
    }


def load(uow: UnitOfWork, task_id: str) -> dict[str, Any]:
    row = live_row(uow, tasks, task_id, "task")
    return task_object(row, tags_of(uow, [task_id])[task_id])


def _completed_at(uow: UnitOfWork, status: str, before: dict[str, Any] | None) -> str | None:
    """Set when the task becomes done, kept while it stays done, cleared otherwise."""
    if status != "done":
        return None
    if before is not None and before["status"] == "done":
        return str(before["completed_at"] or uow.now)
    return uow.now


class TaskFields(Args):
    description: Text | None = Field(None, description="Markdown or plain text.")
    due_at: Timestamp | None = Field(None, description="When it is due.")
    assignee: Name | None = Field(None, description="Who should do it (a person or an agent).")
    contact_id: str | None = link_field("ct", "The contact it is about (a live one).")
    deal_id: str | None = link_field("dl", "The deal it is about (a live one).")


class TaskCreate(TaskFields):
    title: LongName
    status: Status = Field("open", description="open (default), done or cancelled.")
    priority: Priority = Field("normal", description="low, normal (default), high or urgent.")


@operation(
    "task.create",
    summary="Create a task, optionally linked to a contact or a deal.",
    input=TaskCreate,
    output=TaskOut,
    mutates=True,
    errors=("not_found",),
    examples=(
        Example(
            {
                "title": "Send the proposal",
                "due_at": "2026-05-20T17:00:00Z",
                "priority": "high",
                "assignee": "agent_sales",
                "contact_id": "ct_01HG7Z4X9Q8M2N7P3R5T6V8W",
            }
        ),
    ),
)
def create(uow: UnitOfWork, args: TaskCreate) -> dict[str, Any]:
    """Creates a task (status `open` and priority `normal` unless given; created `done`, it gets
    `completed_at`). `contact_id` and `deal_id` must name live records of this account, else
    `not_found` naming the parameter."""
    check_contact(uow, args.contact_id)
    check_deal(uow, args.deal_id)
    row = uow.insert(
        tasks,
        {
            "id": new_id("task"),
            **args.model_dump(include=set(FIELDS)),
            "completed_at": _completed_at(uow, args.status, None),
            "created_at": uow.now,
            "updated_at": uow.now,
            "deleted_at": None,
        },
    )
    return task_object(row, [])


class TaskGet(Args):
    id: str = id_field("tk", "The task id.")


@operation(
    "task.get",
    summary="Fetch one task.",
    input=TaskGet,
    output=TaskOut,
    mutates=False,
    errors=("not_found",),
    examples=(Example({"id": "tk_01HG7Z4X9Q8M2N7P3R5T6V8W"}),),
)
def get(uow: UnitOfWork, args: TaskGet) -> dict[str, Any]:
    """Returns the task with its tags. Its `contact_id`/`deal_id` may name a since-deleted record."""
    return load(uow, args.id)


class TaskList(ListArgs):
    status: Status | None = None
    assignee: Name | None = None
    due_after: Timestamp | None = Field(None, description="Only tasks due at or after this.")
    due_before: Timestamp | None = Field(None, description="Only tasks due before this.")
    contact_id: str | None = link_field("ct", "Only tasks linked to this contact.")
    deal_id: str | None = link_field("dl", "Only tasks linked to this deal.")
    tag: str | None = TAG_FILTER


@operation(
    "task.list",
    summary="List tasks, newest first, by status, assignee, due range, contact, deal or tag.",
    input=TaskList,
    output=ListOf[TaskOut],
    mutates=False,
    errors=("not_found",),
    examples=(
        Example({"status": "open", "assignee": "agent_sales"}),
        Example({"due_before": "2026-06-01", "status": "open", "limit": 50}),
    ),
)
def list_(uow: UnitOfWork, args: TaskList) -> dict[str, Any]:
    """Newest created first (id order; the cursor is stable). `due_after` is inclusive and
    `due_before` exclusive; tasks with no due time are left out when either is given. A `contact_id`
    or `deal_id` of a deleted record still finds its tasks. An unknown `tag` is `not_found`."""
    t = tasks
    query = sa.select(t).where(t.c.account_id == uow.account_id, t.c.deleted_at.is_(None))
    for name in ("status", "assignee", "contact_id", "deal_id"):
        value = getattr(args, name)
        if value is not None:
            query = query.where(t.c[name] == value)
    if args.due_after:
        query = query.where(t.c.due_at >= args.due_after)
    if args.due_before:
        query = query.where(t.c.due_at < args.due_before)
    if args.tag:
        query = query.where(where_tagged(uow, t, args.tag))
    rows = newest_first(uow, query, t, args.starting_after, args.limit)
    tags = tags_of(uow, [r["id"] for r in rows[: args.limit]])
    return page([task_object(r, tags.get(r["id"], [])) for r in rows], args.limit)


class TaskUpdate(TaskFields):
    id: str = id_field("tk", "The task to update.")
    title: LongName | None = None
    status: Status | None = Field(None, description="open, done or cancelled.")
    priority: Priority | None = Field(None, description="low, normal, high or urgent.")


@operation(
    "task.update",
    summary="Change a task; omitted fields stay, null clears.",
    input=TaskUpdate,
    output=TaskOut,
    mutates=True,
    errors=("not_found",),
    examples=(
        Example({"id": "tk_01HG7Z4X9Q8M2N7P3R5T6V8W", "status": "done"}),
        Example({"id": "tk_01HG7Z4X9Q8M2N7P3R5T6V8W", "due_at": None, "assignee": "ada"}),
    ),
)
def update(uow: UnitOfWork, args: TaskUpdate) -> dict[str, Any]:
    """Only the fields you send change; null clears description, due_at, assignee, contact_id or
    deal_id (title, status and priority cannot be cleared). Marking it `done` sets `completed_at`;
    reopening or cancelling clears it. A changed `contact_id`/`deal_id` must name a live record; an
    unchanged one may stay pointing at a deleted record."""
    changes = args.model_dump(include=set(FIELDS), exclude_unset=True)
    if not changes:
        raise KrabsError(
            "invalid_argument", f"nothing to update: send at least one of {', '.join(FIELDS)}"
        )
    for name in REQUIRED:
        if name in changes and changes[name] is None:
            raise KrabsError(
                "invalid_argument", f"{name} cannot be cleared; send a value", param=name
            )
    row = live_row(uow, tasks, args.id, "task")
    if "contact_id" in changes and changes["contact_id"] != row["contact_id"]:
        check_contact(uow, changes["contact_id"])
    if "deal_id" in changes and changes["deal_id"] != row["deal_id"]:
        check_deal(uow, changes["deal_id"])
    if "status" in changes:
        changes["completed_at"] = _completed_at(uow, changes["status"], row)
    if any(row[k] != v for k, v in changes.items()):
        uow.update(tasks, row, {**changes, "updated_at": uow.now})
    return load(uow, args.id)


class TaskDelete(Args):
    id: str = id_field("tk", "The task to delete.")


@operation(
    "task.delete",
    summary="Delete a task (soft, undoable for 24 h).",
    input=TaskDelete,
    output=RemovedOut,
    mutates=True,
    destructive=True,
    errors=("not_found",),
    examples=(Example({"id": "tk_01HG7Z4X9Q8M2N7P3R5T6V8W"}),),
)
def delete(uow: UnitOfWork, args: TaskDelete) -> dict[str, Any]:
    """Soft-deletes the task (it leaves lists and `task.get`). Returns an `undo_token`."""
    row = live_row(uow, tasks, args.id, "task")
    uow.update(tasks, row, {"deleted_at": uow.now, "updated_at": uow.now})
    return {"id": args.id, "deleted": True}
