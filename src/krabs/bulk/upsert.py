"""Upserting many contacts by identity, in batches: the batch-friendly counterpart of
``ops.contact._create`` + ``ops.identity.claim`` (which look up one identity per query).

Semantics are those of processing rows one by one, in order: a row is matched against the live
contacts as they stand after the rows before it. So two rows naming the same person (sharing any
normalized identity) become one contact, and a row whose identities belong to an existing contact
is handled by ``on_match``: ``update`` fills only the contact's EMPTY fields and adds the row's new
identities and tags, ``skip`` leaves it alone, ``create`` makes a new contact anyway (identities
another contact owns stay with it and are reported). Per batch, the owners of every identity, the
matched contacts, their primary kinds and their tags are each fetched with a few ``IN`` queries,
and new rows go in through ``uow.insert_compact_values``; the reads are in ``bulk.lookups``."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import sqlalchemy as sa

from krabs.bulk.identity_filter import IdentityFilter
from krabs.bulk.lookups import (
    FILTER_AFTER_BATCHES,
    fetch_contacts,
    identity_filter,
    live_owner_ids,
    primary_kinds,
)
from krabs.bulk.records import Ident, Issue, Record
from krabs.bulk.tagging import attach_by_name, tag_keys_of
from krabs.contact_fields import FIELDS, display_name
from krabs.engine.uow import UnitOfWork
from krabs.normalize import norm_hash, tag_key
from krabs.store.tables import contacts, identities

OnMatch = Literal["update", "skip", "create"]
#: The columns of the value tuples ``_write`` builds, in their order.
CONTACT_COLUMNS = (
    "id",
    "account_id",
    *FIELDS,
    "created_at",
    "updated_at",
    "deleted_at",
    "merged_into",
)
IDENTITY_COLUMNS = (
    "id",
    "account_id",
    "contact_id",
    "kind",
    "value",
    "normalized",
    "norm_hash",
    "is_primary",
    "source",
    "created_at",
    "deleted_at",
)
BATCH = 500
REPORT_CAP = 1000
#: After these many batches, PostgreSQL's statistics of the growing tables are refreshed.
ANALYZE_AT = frozenset(4**n for n in range(1, 12))


class Report:
    """The per-row report, capped at ``cap`` entries (the totals still count every entry)."""

    def __init__(self, cap: int = REPORT_CAP) -> None:
        self.cap = cap
        self.entries: list[dict[str, Any]] = []
        self.total = 0

    def add(self, issues: list[Issue]) -> None:
        for issue in issues:
            self.total += 1
            if len(self.entries) < self.cap:
                self.entries.append(issue.to_dict())

    def to_dict(self) -> dict[str, Any]:
        return {
            "report": self.entries,
            "report_total": self.total,
            "report_truncated": self.total > len(self.entries),
        }


@dataclass
class Counts:
    created: int = 0
    updated: int = 0
    merged: int = 0
    unchanged: int = 0
    skipped: int = 0
    failed: int = 0

    def to_dict(self) -> dict[str, int]:
        return dict(self.__dict__)


class _Target:
    """A contact as this batch will leave it: new, or existing with its fetched image. A slotted
    class with a plain ``__init__``: an import makes one per new contact."""

    __slots__ = (
        "attributes",
        "dirty",
        "id",
        "new_idents",
        "new_tags",
        "primaries",
        "row",
        "tag_keys",
        "values",
    )

    def __init__(
        self,
        id: str,
        row: dict[str, Any] | None,
        values: dict[str, Any],
        attributes: dict[str, Any],
        primaries: set[str],
        tag_keys: set[str],
    ) -> None:
        self.id, self.row, self.values, self.attributes = id, row, values, attributes
        self.primaries, self.tag_keys = primaries, tag_keys
        self.new_idents: list[Ident] = []
        self.new_tags: list[str] = []
        self.dirty = False


class Upserter:
    """Feed records with ``add``; ``finish`` writes the last batch. ``counts`` and ``report`` hold the
    outcome. A contact this import made is recognized without remembering every id: it is in the
    current batch, or its ``created_at`` is this call's ``uow.now``."""

    def __init__(
        self,
        uow: UnitOfWork,
        *,
        on_match: OnMatch = "update",
        source: str,
        report: Report,
        track: bool = False,
        progress: Callable[[int, int], None] | None = None,
        rows_hint: int | None = None,
    ) -> None:
        self.uow, self.on_match, self.source, self.report = uow, on_match, source, report
        #: Rows expected in all (if known): a large import filters its identity lookups.
        self.rows_hint = rows_hint
        self._filter: IdentityFilter | None = None
        #: With ``track``: the contact each added record went to (matched one when skipped).
        self.contact_ids: list[str] | None = [] if track else None
        self.counts = Counts()
        self._pending: list[Record] = []
        #: Called after each written batch with the rows handled so far (records added, failed
        #: and empty rows) and the rows failed so far.
        self.progress = progress
        self._done = 0
        #: Rows that never became a record: failed or empty.
        self._set_aside = 0
        self._batches = 0
        #: Tag key → live tag id, as found or created by this call (nothing else writes meanwhile).
        self._tag_ids: dict[str, str] = {}

    def fail(self, issues: list[Issue]) -> None:
        self.counts.failed += 1
        self._set_aside += 1
        self.report.add(issues)

    def skip_empty(self, issues: list[Issue]) -> None:
        """A row with nothing to import: counted as skipped, reported as a warning."""
        self.counts.skipped += 1
        self._set_aside += 1
        self.report.add(issues)

    def add(self, record: Record, issues: list[Issue] | None = None) -> None:
        if issues:
            self.report.add(issues)
        self._pending.append(record)
        if len(self._pending) >= BATCH:
            self.flush()

    def finish(self) -> None:
        self.flush()

    def flush(self) -> None:
        records, self._pending = self._pending, []
        if not records:
            return
        pairs = list(dict.fromkeys((i.kind, i.norm) for r in records for i in r.identities))
        hashes: dict[tuple[str, str], str] = {}
        if self._batches == FILTER_AFTER_BATCHES:
            self._filter = identity_filter(self.uow, self.rows_hint)
        owners = live_owner_ids(self.uow, pairs, hashes, self._filter)
        existing = sorted(set(owners.values()))
        rows = fetch_contacts(self.uow, existing)
        primaries = primary_kinds(self.uow, existing)
        tagged = tag_keys_of(self.uow, existing)
        targets: dict[str, _Target] = {}
        for record in records:
            self._row(record, owners, targets, rows, primaries, tagged)
        self._write(list(targets.values()), hashes)
        self._batches += 1
        if self._batches in ANALYZE_AT and self.uow.dialect == "postgresql":
            # The tables grow inside this one transaction, unseen by autovacuum: without fresh
            # statistics the planner scans instead of using the identity index (quadratic).
            for name in ("contacts", "identities", "tags", "tag_links"):
                self.uow.execute(sa.text(f"ANALYZE {name}"))
        self._done += len(records)
        if self.progress is not None:
            self.progress(self._done + self._set_aside, self.counts.failed)

    def _row(
        self,
        rec: Record,
        owners: dict[tuple[str, str], str],
        targets: dict[str, _Target],
        rows: dict[str, dict[str, Any]],
        primaries: dict[str, set[str]],
        tagged: dict[str, set[str]],
    ) -> None:
        matched = [owners[(i.kind, i.norm)] for i in rec.identities if (i.kind, i.norm) in owners]
        cid = matched[0] if matched else None
        ours = cid is not None and self._ours(cid, targets, rows)
        if cid is not None and not ours:
            if self.on_match == "skip":
                self.counts.skipped += 1
                if self.contact_ids is not None:
                    self.contact_ids.append(cid)
                return
            if self.on_match == "create":
                cid = None
        if cid is None:
            t = _Target(self.uow.new_bulk_id(contacts), None, {}, {}, set(), set())
            targets[t.id] = t
            outcome = "created"
        else:
            t = targets.get(cid) or self._existing(cid, rows, primaries, tagged)
            targets[cid] = t
            outcome = "merged" if ours else "updated"
        changed = _fill(t, rec)
        for ident in rec.identities:
            owner = owners.get((ident.kind, ident.norm))
            if owner == t.id:
                continue
            if owner is not None:
                self.report.add(
                    [
                        Issue(
                            rec.row,
                            ident.column,
                            "identity_taken",
                            f"{ident.kind} {ident.norm!r} belongs to contact {owner}; left there "
                            "(use contact.merge to combine the two)",
                            "warning",
                        )
                    ]
                )
                continue
            owners[(ident.kind, ident.norm)] = t.id
            t.new_idents.append(ident)
            changed = True
        t.dirty = t.dirty or changed
        if self.contact_ids is not None:
            self.contact_ids.append(t.id)
        if outcome == "created":
            self.counts.created += 1
        elif outcome == "merged":
            self.counts.merged += 1
        elif changed:
            self.counts.updated += 1
        else:
            self.counts.unchanged += 1

    def _ours(self, cid: str, targets: dict[str, _Target], rows: dict[str, dict[str, Any]]) -> bool:
        row = targets[cid].row if cid in targets else rows[cid]
        return row is None or row["created_at"] == self.uow.now

    def _existing(
        self,
        cid: str,
        rows: dict[str, dict[str, Any]],
        primaries: dict[str, set[str]],
        tagged: dict[str, set[str]],
    ) -> _Target:
        row = rows[cid]
        return _Target(
            cid,
            row,
            {f: row[f] for f in FIELDS if f != "attributes"},
            dict(row["attributes"] or {}),
            set(primaries.get(cid, ())),
            set(tagged.get(cid, ())),
        )

    def _write(self, targets: list[_Target], hashes: dict[tuple[str, str], str]) -> None:
        uow, now, account = self.uow, self.uow.now, self.uow.account_id
        new_contacts: list[tuple[Any, ...]] = []
        updates = []
        fresh: set[str] = set()
        for t in targets:
            v = t.values
            if t.row is None:
                fresh.add(t.id)
                name = display_name(v, t.new_idents[0].value if t.new_idents else None)
                new_contacts.append(
                    (
                        t.id,
                        account,
                        name,
                        v.get("given_name"),
                        v.get("family_name"),
                        v.get("company"),
                        v.get("title"),
                        v.get("stage"),
                        v.get("owner"),
                        t.attributes,
                        now,
                        now,
                        None,
                        None,
                    )
                )
            elif t.dirty:
                changes = {f: x for f, x in v.items() if t.row[f] != x}
                if t.attributes != (t.row["attributes"] or {}):
                    changes["attributes"] = t.attributes
                updates.append((t.row, {**changes, "updated_at": now}))
        new_idents = self._identity_rows(targets, hashes)
        uow.insert_compact_values(contacts, CONTACT_COLUMNS, new_contacts)
        uow.insert_compact_values(identities, IDENTITY_COLUMNS, new_idents)
        if self._filter is not None:
            add = self._filter.add
            for row in new_idents:
                add(row[6])  # norm_hash
        attach_by_name(
            uow,
            {t.id: t.new_tags for t in targets if t.new_tags},
            "contact",
            unlinked=fresh,
            known=self._tag_ids,
        )
        uow.update_bulk_many(contacts, updates)

    def _identity_rows(
        self, targets: list[_Target], hashes: dict[tuple[str, str], str]
    ) -> list[tuple[Any, ...]]:
        """The new identities' rows; the first of a kind on a contact without one is primary."""
        rows: list[tuple[Any, ...]] = []
        if not any(t.new_idents for t in targets):
            return rows  # no id block: the audit lists no empty "created 0 identities"
        account, now, source = self.uow.account_id, self.uow.now, self.source
        next_id = self.uow.bulk_ids(identities)
        for t in targets:
            for ident in t.new_idents:
                kind, norm = ident.kind, ident.norm
                primary = kind not in t.primaries
                t.primaries.add(kind)
                key = hashes.get((kind, norm)) or norm_hash(account, kind, norm)
                rows.append(
                    (
                        next_id(),
                        account,
                        t.id,
                        kind,
                        ident.value,
                        norm,
                        key,
                        primary,
                        source,
                        now,
                        None,
                    )
                )
        return rows


def _fill(t: _Target, rec: Record) -> bool:
    """Fill the target's empty fields, missing attribute keys and tags from the record."""
    changed = False
    for name, value in rec.fields.items():
        if t.values.get(name) in (None, ""):
            t.values[name] = value
            changed = True
    for key, value in rec.attributes.items():
        if key not in t.attributes:
            t.attributes[key] = value
            changed = True
    for name in rec.tags:
        key = tag_key(name)
        if key not in t.tag_keys:
            t.tag_keys.add(key)
            t.new_tags.append(name)
            changed = True
    return changed
