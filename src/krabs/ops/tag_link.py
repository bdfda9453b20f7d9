"""Putting tags on records and taking them off: `tag.attach` and `tag.detach`, for one target or up
to 100 at once. A link is a row of ``tag_links``; detaching deletes it through the unit of work, so
`action.undo` puts it back exactly."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from pydantic import Field, TypeAdapter, ValidationError, model_validator

from krabs.contract.errors import KrabsError
from krabs.contract.ids import new_id
from krabs.contract.models import Args, Out
from krabs.contract.registry import Example, operation
from krabs.engine.uow import UnitOfWork
from krabs.ops.common import TaggableType, live_row
from krabs.ops.tag import (
    TARGET_ID_PATTERN,
    TARGETS,
    TYPE_BY_PREFIX,
    TagName,
    TagOut,
    TagRefArg,
    find_tag,
    insert_tag,
    load_tag,
    tag_by_name,
)
from krabs.store.tables import tag_links


def _target_id(default: Any = ...) -> Any:
    return Field(
        default,
        pattern=TARGET_ID_PATTERN,
        max_length=48,
        description="A contact `ct_…`, deal `dl_…`, task `tk_…` or note `nt_…` of this account.",
    )


TargetTypeField = Field(
    None, description="contact, deal, task or note; inferred from the id when omitted."
)


class Target(Args):
    target_type: TaggableType | None = TargetTypeField
    target_id: str = _target_id()


class Targets(Args):
    """One target (`target_id`, optionally `target_type`) or several (`targets`), not both."""

    tag: TagRefArg
    target_type: TaggableType | None = TargetTypeField
    target_id: str | None = _target_id(None)
    targets: list[Target] | None = Field(
        None, min_length=1, max_length=100, description="Up to 100 targets at once."
    )

    @model_validator(mode="after")
    def _one_form(self) -> Targets:
        if (self.target_id is None) == (self.targets is None):
            raise ValueError("give either target_id (one record) or targets (a list), not both")
        if self.targets is not None and self.target_type is not None:
            raise ValueError("target_type goes inside each item of targets")
        return self

    def items(self) -> list[tuple[str, str | None, str]]:
        """(param prefix, declared type, id) of every target, in the order given."""
        if self.targets is None:
            return [("", self.target_type, str(self.target_id))]
        return [(f"targets.{n}.", t.target_type, t.target_id) for n, t in enumerate(self.targets)]


class TargetResult(Out):
    target_type: str
    target_id: str
    changed: bool = Field(description="False when the tag was already on (attach) or off (detach).")


class LinkOut(TagOut):
    tag_created: bool = False
    targets: list[TargetResult]
    undo_token: str | None = None
    undo_expires_at: str | None = None


def _live_targets(uow: UnitOfWork, args: Targets) -> list[tuple[str, str]]:
    """Each distinct target as (type, id), checked to be a live record of this account."""
    seen: dict[str, str] = {}
    for prefix, declared, target_id in args.items():
        noun = TYPE_BY_PREFIX[target_id[:2]]
        if declared is not None and declared != noun:
            raise KrabsError(
                "invalid_argument",
                f"{target_id} is a {noun} id but target_type says {declared}; "
                "fix target_type or omit it",
                param=f"{prefix}target_type",
            )
        live_row(uow, TARGETS[noun][0], target_id, noun, f"{prefix}target_id")
        seen.setdefault(target_id, noun)
    return [(noun, target_id) for target_id, noun in seen.items()]


def _links(uow: UnitOfWork, tag_id: str, target_ids: list[str]) -> dict[str, dict[str, Any]]:
    rows = uow.execute(
        sa.select(tag_links).where(
            tag_links.c.account_id == uow.account_id,
            tag_links.c.tag_id == tag_id,
            tag_links.c.target_id.in_(target_ids),
        )
    ).all()
    return {r.target_id: dict(r._mapping) for r in rows}


_NAME = TypeAdapter(TagName)


class TagAttach(Targets):
    create: bool = Field(False, description="Create the tag if no tag has this name.")


@operation(
    "tag.attach",
    summary="Put a tag on a contact, deal, task or note (or up to 100 at once).",
    input=TagAttach,
    output=LinkOut,
    mutates=True,
    errors=("not_found", "conflict"),
    examples=(
        Example({"tag": "VIP", "target_id": "ct_01HG7Z4X9Q8M2N7P3R5T6V8W"}),
        Example(
            {
                "tag": "tg_01HG7Z4X9Q8M2N7P3R5T6V8W",
                "targets": [
                    {"target_type": "deal", "target_id": "dl_01HG7Z4X9Q8M2N7P3R5T6V8W"},
                    {"target_id": "ct_01HG7Z4X9Q8M2N7P3R5T6V8W"},
                ],
            }
        ),
        Example({"tag": "Churn risk", "target_id": "ct_01HG7Z4X9Q8M2N7P3R5T6V8W", "create": True}),
    ),
)
def attach(uow: UnitOfWork, args: TagAttach) -> dict[str, Any]:
    """`tag` is a tag id or name (case-insensitive). Every target must be a live record of this
    account (`not_found` names the parameter); a tag already on a record is left as is
    (`changed: false`). With `create: true` a missing tag is created by that name."""
    targets = _live_targets(uow, args)
    created = False
    if args.create and not args.tag.startswith("tg_") and tag_by_name(uow, args.tag) is None:
        try:
            name = _NAME.validate_python(args.tag)
        except ValidationError as exc:
            msg = exc.errors(include_url=False)[0]["msg"]
            raise KrabsError("invalid_argument", f"tag: {msg}", param="tag") from None
        tag = insert_tag(uow, name)
        created = True
    else:
        tag = find_tag(uow, args.tag)
    existing = _links(uow, tag["id"], [i for _, i in targets])
    fresh = [
        {
            "id": new_id("tag_link"),
            "tag_id": tag["id"],
            "target_type": noun,
            "target_id": target_id,
            "created_at": uow.now,
        }
        for noun, target_id in targets
        if target_id not in existing
    ]
    uow.insert_many(tag_links, fresh)
    return {
        **load_tag(uow, tag),
        "tag_created": created,
        "targets": [
            {"target_type": n, "target_id": i, "changed": i not in existing} for n, i in targets
        ],
    }


@operation(
    "tag.detach",
    summary="Take a tag off one or more records (undoable for 24 h).",
    input=Targets,
    output=LinkOut,
    mutates=True,
    destructive=True,
    errors=("not_found",),
    examples=(Example({"tag": "VIP", "target_id": "ct_01HG7Z4X9Q8M2N7P3R5T6V8W"}),),
)
def detach(uow: UnitOfWork, args: Targets) -> dict[str, Any]:
    """`tag` is a tag id or name. Every target must be a live record of this account; a record
    without the tag is left as is (`changed: false`). Returns an `undo_token`."""
    tag = find_tag(uow, args.tag)
    targets = _live_targets(uow, args)
    existing = _links(uow, tag["id"], [i for _, i in targets])
    for _, target_id in targets:
        if target_id in existing:
            uow.delete(tag_links, existing[target_id])
    return {
        **load_tag(uow, tag),
        "targets": [
            {"target_type": n, "target_id": i, "changed": i in existing} for n, i in targets
        ],
    }
