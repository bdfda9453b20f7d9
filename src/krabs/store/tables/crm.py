"""The CRM beyond contacts: interactions, deals and their history, tasks, notes, tags, the business profile, expenses."""

from __future__ import annotations

import sqlalchemy as sa

from krabs.store.tables.base import ID, live_unique, metadata, timestamp

# -- the CRM beyond contacts: interactions, deals, tasks, notes, tags, profile, expenses ----------
# Deletes are soft (``deleted_at``) so undo and tombstone links work; link rows that can be removed
# for good (tag links, participants) have an ``id`` of their own so the unit of work can image them.


interactions = sa.Table(
    "interactions",
    metadata,
    sa.Column("id", ID, primary_key=True),
    sa.Column("account_id", ID, sa.ForeignKey("accounts.id"), nullable=False),
    sa.Column("kind", sa.String(16), nullable=False),
    sa.Column("direction", sa.String(16), nullable=False),
    timestamp("occurred_at"),
    sa.Column("subject", sa.String(1000)),
    sa.Column("body", sa.Text),
    #: An email's Message-ID or another system's id: a second create with it returns the first.
    sa.Column("external_id", sa.String(500)),
    #: The conversation it belongs to (an email's thread root Message-ID, a call's ticket, …).
    sa.Column("thread_id", sa.String(500)),
    sa.Column("source", sa.String(200)),
    sa.Column("attributes", sa.JSON, nullable=False),
    timestamp("created_at"),
    timestamp("updated_at"),
    timestamp("deleted_at", nullable=True),
    sa.Index(None, "account_id", "occurred_at", "id"),
    sa.Index(None, "account_id", "thread_id"),
    live_unique("uq_interactions_external_id", "account_id", "external_id"),
)

interaction_participants = sa.Table(
    "interaction_participants",
    metadata,
    sa.Column("id", ID, primary_key=True),
    sa.Column("account_id", ID, sa.ForeignKey("accounts.id"), nullable=False),
    sa.Column("interaction_id", ID, sa.ForeignKey("interactions.id"), nullable=False),
    sa.Column("contact_id", ID, sa.ForeignKey("contacts.id"), nullable=False),
    #: from, to, cc, bcc or participant.
    sa.Column("role", sa.String(16), nullable=False),
    timestamp("created_at"),
    sa.UniqueConstraint("interaction_id", "contact_id", "role"),
    sa.Index(None, "account_id", "contact_id"),
)

deals = sa.Table(
    "deals",
    metadata,
    sa.Column("id", ID, primary_key=True),
    sa.Column("account_id", ID, sa.ForeignKey("accounts.id"), nullable=False),
    sa.Column("title", sa.String(400), nullable=False),
    sa.Column("contact_id", ID, sa.ForeignKey("contacts.id")),
    #: Minor units (cents) of ``currency``: money is never a float.
    sa.Column("amount", sa.BigInteger, nullable=False),
    sa.Column("currency", sa.String(3), nullable=False),
    sa.Column("stage", sa.String(80), nullable=False),
    #: open, won or lost (won/lost are terminal stages of the pipeline).
    sa.Column("status", sa.String(8), nullable=False),
    sa.Column("source_channel", sa.String(80)),
    #: none, month or year: what MRR counts.
    sa.Column("recurring_interval", sa.String(8), nullable=False),
    sa.Column("expected_close_date", sa.String(10)),
    timestamp("closed_at", nullable=True),
    sa.Column("owner", sa.String(200)),
    sa.Column("attributes", sa.JSON, nullable=False),
    timestamp("created_at"),
    timestamp("updated_at"),
    timestamp("deleted_at", nullable=True),
    sa.Index(None, "account_id", "id"),
    sa.Index(None, "account_id", "stage", "id"),
    sa.Index(None, "account_id", "contact_id"),
)

#: One row per deal write that changed its stage, status, amount or recurrence: the history the
#: funnel and MRR movements are computed from (append-only; never updated).
deal_changes = sa.Table(
    "deal_changes",
    metadata,
    sa.Column("id", ID, primary_key=True),
    sa.Column("account_id", ID, sa.ForeignKey("accounts.id"), nullable=False),
    sa.Column("deal_id", ID, sa.ForeignKey("deals.id"), nullable=False),
    timestamp("at"),
    sa.Column("from_stage", sa.String(80)),
    sa.Column("stage", sa.String(80), nullable=False),
    sa.Column("status", sa.String(8), nullable=False),
    sa.Column("amount", sa.BigInteger, nullable=False),
    sa.Column("currency", sa.String(3), nullable=False),
    sa.Column("recurring_interval", sa.String(8), nullable=False),
    sa.Column("deleted", sa.Boolean, nullable=False),
    sa.Index(None, "account_id", "at"),
    sa.Index(None, "deal_id", "at"),
)

tasks = sa.Table(
    "tasks",
    metadata,
    sa.Column("id", ID, primary_key=True),
    sa.Column("account_id", ID, sa.ForeignKey("accounts.id"), nullable=False),
    sa.Column("title", sa.String(400), nullable=False),
    sa.Column("description", sa.Text),
    timestamp("due_at", nullable=True),
    #: open, done or cancelled.
    sa.Column("status", sa.String(12), nullable=False),
    #: low, normal, high or urgent.
    sa.Column("priority", sa.String(8), nullable=False),
    sa.Column("assignee", sa.String(200)),
    sa.Column("contact_id", ID, sa.ForeignKey("contacts.id")),
    sa.Column("deal_id", ID, sa.ForeignKey("deals.id")),
    timestamp("completed_at", nullable=True),
    timestamp("created_at"),
    timestamp("updated_at"),
    timestamp("deleted_at", nullable=True),
    sa.Index(None, "account_id", "status", "id"),
    sa.Index(None, "account_id", "assignee"),
    sa.Index(None, "account_id", "due_at"),
    sa.Index(None, "account_id", "contact_id"),
    sa.Index(None, "account_id", "deal_id"),
)

notes = sa.Table(
    "notes",
    metadata,
    sa.Column("id", ID, primary_key=True),
    sa.Column("account_id", ID, sa.ForeignKey("accounts.id"), nullable=False),
    sa.Column("body", sa.Text, nullable=False),
    sa.Column("contact_id", ID, sa.ForeignKey("contacts.id")),
    sa.Column("deal_id", ID, sa.ForeignKey("deals.id")),
    #: The calling key's agent, and the key itself.
    sa.Column("author", sa.String(80), nullable=False),
    sa.Column("author_key_id", ID),
    timestamp("created_at"),
    timestamp("updated_at"),
    timestamp("deleted_at", nullable=True),
    sa.Index(None, "account_id", "id"),
    sa.Index(None, "account_id", "contact_id"),
    sa.Index(None, "account_id", "deal_id"),
)

tags = sa.Table(
    "tags",
    metadata,
    sa.Column("id", ID, primary_key=True),
    sa.Column("account_id", ID, sa.ForeignKey("accounts.id"), nullable=False),
    sa.Column("name", sa.String(100), nullable=False),
    #: The name case-folded and whitespace-collapsed: what uniqueness compares.
    sa.Column("name_key", sa.String(100), nullable=False),
    sa.Column("color", sa.String(7)),
    sa.Column("description", sa.String(1000)),
    timestamp("created_at"),
    timestamp("updated_at"),
    timestamp("deleted_at", nullable=True),
    live_unique("uq_tags_live_name", "account_id", "name_key"),
)

tag_links = sa.Table(
    "tag_links",
    metadata,
    sa.Column("id", ID, primary_key=True),
    sa.Column("account_id", ID, sa.ForeignKey("accounts.id"), nullable=False),
    sa.Column("tag_id", ID, sa.ForeignKey("tags.id"), nullable=False),
    #: contact, deal, task or note.
    sa.Column("target_type", sa.String(16), nullable=False),
    sa.Column("target_id", ID, nullable=False),
    timestamp("created_at"),
    sa.UniqueConstraint("tag_id", "target_id"),
    sa.Index(None, "account_id", "target_id"),
)

business_profiles = sa.Table(
    "business_profiles",
    metadata,
    sa.Column("id", ID, primary_key=True),
    sa.Column("account_id", ID, sa.ForeignKey("accounts.id"), nullable=False, unique=True),
    #: The whole profile as one validated document (see ``krabs.ops.business_profile``).
    sa.Column("data", sa.JSON, nullable=False),
    timestamp("created_at"),
    timestamp("updated_at"),
)

expenses = sa.Table(
    "expenses",
    metadata,
    sa.Column("id", ID, primary_key=True),
    sa.Column("account_id", ID, sa.ForeignKey("accounts.id"), nullable=False),
    sa.Column("amount", sa.BigInteger, nullable=False),
    sa.Column("currency", sa.String(3), nullable=False),
    sa.Column("category", sa.String(80), nullable=False),
    sa.Column("channel", sa.String(80)),
    sa.Column("incurred_on", sa.String(10), nullable=False),
    sa.Column("description", sa.String(1000)),
    timestamp("created_at"),
    timestamp("updated_at"),
    timestamp("deleted_at", nullable=True),
    sa.Index(None, "account_id", "incurred_on", "id"),
)
