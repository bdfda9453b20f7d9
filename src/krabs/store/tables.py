"""The tables. Timestamps are fixed-width ISO-8601 UTC strings (``2026-05-16T14:22:08.000000Z``) so they
sort lexically, compare identically on SQLite and PostgreSQL, and appear verbatim in audit images."""

from __future__ import annotations

import sqlalchemy as sa

metadata = sa.MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
        "ck": "ck_%(table_name)s_%(constraint_name)s",
    }
)

ID = sa.String(40)
TS = sa.String(32)


def _ts(name: str, nullable: bool = False) -> sa.Column:
    return sa.Column(name, TS, nullable=nullable)


accounts = sa.Table(
    "accounts",
    metadata,
    sa.Column("id", ID, primary_key=True),
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("default_region", sa.String(2)),
    sa.Column("settings", sa.JSON, nullable=False),
    _ts("created_at"),
    _ts("updated_at"),
)

api_keys = sa.Table(
    "api_keys",
    metadata,
    sa.Column("id", ID, primary_key=True),
    sa.Column("account_id", ID, sa.ForeignKey("accounts.id"), nullable=False),
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("secret_hash", sa.String(64), nullable=False, unique=True),
    sa.Column("prefix", sa.String(40), nullable=False),
    sa.Column("scopes", sa.JSON, nullable=False),
    sa.Column("agent_id", sa.String(80), nullable=False),
    sa.Column("created_by", ID),
    _ts("created_at"),
    _ts("last_used_at", nullable=True),
    _ts("expires_at", nullable=True),
    _ts("revoked_at", nullable=True),
    sa.Index(None, "account_id", "id"),
)

runs = sa.Table(
    "runs",
    metadata,
    sa.Column("id", ID, primary_key=True),
    sa.Column("account_id", ID, sa.ForeignKey("accounts.id"), nullable=False),
    sa.Column("agent_id", sa.String(80), nullable=False),
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("status", sa.String(24), nullable=False),
    sa.Column("default_day", sa.String(10)),
    _ts("created_at"),
    _ts("updated_at"),
    _ts("closed_at", nullable=True),
    # Added by migration 0003: the run's event counter and running stats, kept by run_events' writer.
    sa.Column("last_seq", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("calls", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("errors", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("writes", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("input_tokens", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("output_tokens", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("cost_micros", sa.BigInteger, nullable=False, server_default="0"),
    _ts("last_call_at", nullable=True),
    sa.Index(None, "account_id", "id"),
    sa.Index(
        "uq_runs_default_day",
        "account_id",
        "agent_id",
        "default_day",
        unique=True,
        sqlite_where=sa.text("default_day IS NOT NULL"),
        postgresql_where=sa.text("default_day IS NOT NULL"),
    ),
)

contacts = sa.Table(
    "contacts",
    metadata,
    sa.Column("id", ID, primary_key=True),
    sa.Column("account_id", ID, sa.ForeignKey("accounts.id"), nullable=False),
    sa.Column("display_name", sa.String(400)),
    sa.Column("given_name", sa.String(200)),
    sa.Column("family_name", sa.String(200)),
    sa.Column("company", sa.String(200)),
    sa.Column("title", sa.String(200)),
    sa.Column("stage", sa.String(24)),
    sa.Column("owner", sa.String(200)),
    sa.Column("attributes", sa.JSON, nullable=False),
    _ts("created_at"),
    _ts("updated_at"),
    _ts("deleted_at", nullable=True),
    sa.Column("merged_into", ID),
    sa.Index(None, "account_id", "id"),
    sa.Index(None, "account_id", "updated_at"),
    sa.Index(None, "account_id", "stage", "id"),
)

identities = sa.Table(
    "identities",
    metadata,
    sa.Column("id", ID, primary_key=True),
    sa.Column("account_id", ID, sa.ForeignKey("accounts.id"), nullable=False),
    sa.Column("contact_id", ID, sa.ForeignKey("contacts.id"), nullable=False),
    sa.Column("kind", sa.String(16), nullable=False),
    sa.Column("value", sa.Text, nullable=False),
    sa.Column("normalized", sa.Text, nullable=False),
    #: SHA-256 of the normalized value: what the unique index holds (btree rows have a size limit).
    sa.Column("norm_hash", sa.String(64), nullable=False),
    sa.Column("is_primary", sa.Boolean, nullable=False),
    sa.Column("source", sa.String(200)),
    _ts("created_at"),
    _ts("deleted_at", nullable=True),
    sa.Index(None, "contact_id"),
    sa.Index(
        "uq_identities_live",
        "account_id",
        "kind",
        "norm_hash",
        unique=True,
        sqlite_where=sa.text("deleted_at IS NULL"),
        postgresql_where=sa.text("deleted_at IS NULL"),
    ),
)

audit_actions = sa.Table(
    "audit_actions",
    metadata,
    sa.Column("id", ID, primary_key=True),
    sa.Column("account_id", ID, sa.ForeignKey("accounts.id"), nullable=False),
    sa.Column("seq", sa.BigInteger, nullable=False),
    _ts("created_at"),
    sa.Column("op", sa.String(80), nullable=False),
    sa.Column("run_id", ID),
    sa.Column("key_id", ID),
    sa.Column("agent_id", sa.String(80)),
    sa.Column("record", sa.Text, nullable=False),
    sa.Column("hash", sa.String(64), nullable=False),
    sa.Column("prev_hash", sa.String(64), nullable=False),
    sa.Column("payload_digest", sa.String(64), nullable=False),
    sa.Column("undo_token_hash", sa.String(64), unique=True),
    _ts("undo_expires_at", nullable=True),
    sa.Column("undo_of", ID),
    #: The signed log (migration 0004): Ed25519 signature (base64) of the record's Merkle leaf hash
    #: and the name of the key that made it; NULL for records from before signing.
    sa.Column("signature", sa.String(88)),
    sa.Column("signing_key", sa.String(80)),
    sa.UniqueConstraint("account_id", "seq"),
    sa.Index(
        "uq_audit_actions_undo_of",
        "account_id",
        "undo_of",
        unique=True,
        sqlite_where=sa.text("undo_of IS NOT NULL"),
        postgresql_where=sa.text("undo_of IS NOT NULL"),
    ),
    sa.Index(None, "account_id", "op", "seq"),
    sa.Index(None, "account_id", "run_id", "seq"),
)

audit_targets = sa.Table(
    "audit_targets",
    metadata,
    sa.Column("account_id", ID, nullable=False),
    sa.Column("target_id", ID, nullable=False),
    sa.Column("seq", sa.BigInteger, nullable=False),
    sa.Column("action_id", ID, nullable=False),
    sa.PrimaryKeyConstraint("account_id", "target_id", "seq"),
)

audit_payloads = sa.Table(
    "audit_payloads",
    metadata,
    sa.Column("account_id", ID, nullable=False),
    sa.Column("digest", sa.String(64), nullable=False),
    sa.Column("body", sa.Text, nullable=False),
    #: Sealed payloads (migration 0006, ``krabs.audit.sealing``): the subjects whose data keys seal
    #: it (space-separated contact ids, or the account id), the sealed before-images undo needs, and
    #: the action's time while those are kept (the retention sweep drops them after 24 h).
    sa.Column("subjects", sa.Text),
    sa.Column("undo", sa.Text),
    _ts("images_at", nullable=True),
    sa.PrimaryKeyConstraint("account_id", "digest"),
    sa.Index(None, "images_at"),
)

audit_heads = sa.Table(
    "audit_heads",
    metadata,
    sa.Column("account_id", ID, sa.ForeignKey("accounts.id"), primary_key=True),
    sa.Column("seq", sa.BigInteger, nullable=False),
    sa.Column("hash", sa.String(64), nullable=False),
)

idempotency_keys = sa.Table(
    "idempotency_keys",
    metadata,
    sa.Column("account_id", ID, nullable=False),
    sa.Column("key", sa.String(255), nullable=False),
    sa.Column("op", sa.String(80), nullable=False),
    sa.Column("fingerprint", sa.String(64), nullable=False),
    sa.Column("status", sa.Integer, nullable=False),
    sa.Column("response", sa.Text, nullable=False),
    sa.Column("run_id", ID),
    sa.Column("action_id", ID),
    _ts("created_at"),
    _ts("expires_at"),
    sa.PrimaryKeyConstraint("account_id", "key"),
)

# -- the CRM beyond contacts: interactions, deals, tasks, notes, tags, profile, expenses ----------
# Deletes are soft (``deleted_at``) so undo and tombstone links work; link rows that can be removed
# for good (tag links, participants) have an ``id`` of their own so the unit of work can image them.


def _live_unique(name: str, *cols: str) -> sa.Index:
    """A uniqueness rule over live rows only: a deleted row frees its value."""
    return sa.Index(
        name,
        *cols,
        unique=True,
        sqlite_where=sa.text("deleted_at IS NULL"),
        postgresql_where=sa.text("deleted_at IS NULL"),
    )


interactions = sa.Table(
    "interactions",
    metadata,
    sa.Column("id", ID, primary_key=True),
    sa.Column("account_id", ID, sa.ForeignKey("accounts.id"), nullable=False),
    sa.Column("kind", sa.String(16), nullable=False),
    sa.Column("direction", sa.String(16), nullable=False),
    _ts("occurred_at"),
    sa.Column("subject", sa.String(1000)),
    sa.Column("body", sa.Text),
    #: An email's Message-ID or another system's id: a second create with it returns the first.
    sa.Column("external_id", sa.String(500)),
    #: The conversation it belongs to (an email's thread root Message-ID, a call's ticket, …).
    sa.Column("thread_id", sa.String(500)),
    sa.Column("source", sa.String(200)),
    sa.Column("attributes", sa.JSON, nullable=False),
    _ts("created_at"),
    _ts("updated_at"),
    _ts("deleted_at", nullable=True),
    sa.Index(None, "account_id", "occurred_at", "id"),
    sa.Index(None, "account_id", "thread_id"),
    _live_unique("uq_interactions_external_id", "account_id", "external_id"),
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
    _ts("created_at"),
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
    _ts("closed_at", nullable=True),
    sa.Column("owner", sa.String(200)),
    sa.Column("attributes", sa.JSON, nullable=False),
    _ts("created_at"),
    _ts("updated_at"),
    _ts("deleted_at", nullable=True),
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
    _ts("at"),
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
    _ts("due_at", nullable=True),
    #: open, done or cancelled.
    sa.Column("status", sa.String(12), nullable=False),
    #: low, normal, high or urgent.
    sa.Column("priority", sa.String(8), nullable=False),
    sa.Column("assignee", sa.String(200)),
    sa.Column("contact_id", ID, sa.ForeignKey("contacts.id")),
    sa.Column("deal_id", ID, sa.ForeignKey("deals.id")),
    _ts("completed_at", nullable=True),
    _ts("created_at"),
    _ts("updated_at"),
    _ts("deleted_at", nullable=True),
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
    _ts("created_at"),
    _ts("updated_at"),
    _ts("deleted_at", nullable=True),
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
    _ts("created_at"),
    _ts("updated_at"),
    _ts("deleted_at", nullable=True),
    _live_unique("uq_tags_live_name", "account_id", "name_key"),
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
    _ts("created_at"),
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
    _ts("created_at"),
    _ts("updated_at"),
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
    _ts("created_at"),
    _ts("updated_at"),
    _ts("deleted_at", nullable=True),
    sa.Index(None, "account_id", "incurred_on", "id"),
)

# -- runs: events, approvals, spans, jobs (migration 0003) ------------------------------------------

#: One row per run event. ``id`` is the global cursor (the firehose's), ``seq`` the run's own gap-free
#: counter (allocated from ``runs.last_seq`` in the writer's transaction). ``data`` is JSON text.
run_events = sa.Table(
    "run_events",
    metadata,
    sa.Column(
        "id",
        sa.BigInteger().with_variant(sa.Integer, "sqlite"),
        primary_key=True,
        autoincrement=True,
    ),
    sa.Column("account_id", ID, nullable=False),
    sa.Column("run_id", ID, nullable=False),
    sa.Column("seq", sa.BigInteger, nullable=False),
    _ts("ts"),
    sa.Column("type", sa.String(40), nullable=False),
    sa.Column("op", sa.String(80)),
    sa.Column("action_id", ID),
    #: A tool_call's latency, kept out of ``data`` so run stats (p50/p95) need no JSON parsing.
    sa.Column("latency_ms", sa.Float),
    sa.Column("data", sa.Text, nullable=False),
    sa.UniqueConstraint("run_id", "seq"),
    sa.Index(None, "account_id", "id"),
)


#: Approval gates (issue 5): which operations need a human, per agent, per key or account-wide.
approval_policies = sa.Table(
    "approval_policies",
    metadata,
    sa.Column("id", ID, primary_key=True),
    sa.Column("account_id", ID, sa.ForeignKey("accounts.id"), nullable=False),
    #: ``*`` (every caller), ``agent:<agent_id>`` or ``key:<key_id>``.
    sa.Column("subject", sa.String(120), nullable=False),
    sa.Column("rules", sa.JSON, nullable=False),
    sa.Column("updated_by", sa.String(80)),
    _ts("created_at"),
    _ts("updated_at"),
    sa.UniqueConstraint("account_id", "subject"),
)

approvals = sa.Table(
    "approvals",
    metadata,
    sa.Column("id", ID, primary_key=True),
    sa.Column("account_id", ID, sa.ForeignKey("accounts.id"), nullable=False),
    sa.Column("run_id", ID),
    sa.Column("agent_id", sa.String(80), nullable=False),
    sa.Column("key_id", ID),
    sa.Column("op", sa.String(80), nullable=False),
    sa.Column("fingerprint", sa.String(64), nullable=False),
    sa.Column("idempotency_key", sa.String(255)),
    sa.Column("args", sa.JSON, nullable=False),
    sa.Column("reason", sa.String(300), nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("decided_by", sa.String(120)),
    sa.Column("note", sa.Text),
    _ts("created_at"),
    _ts("decided_at", nullable=True),
    _ts("consumed_at", nullable=True),
    sa.Index(None, "account_id", "idempotency_key"),
    sa.Index(None, "account_id", "run_id", "status"),
)

#: Background work (queued batch runs), taken with FOR UPDATE SKIP LOCKED on PostgreSQL.
jobs = sa.Table(
    "jobs",
    metadata,
    sa.Column("id", ID, primary_key=True),
    sa.Column("account_id", ID, sa.ForeignKey("accounts.id"), nullable=False),
    sa.Column("kind", sa.String(40), nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("run_id", ID),
    sa.Column("principal", sa.JSON, nullable=False),
    sa.Column("payload", sa.JSON, nullable=False),
    sa.Column("result", sa.JSON),
    sa.Column("attempts", sa.Integer, nullable=False),
    _ts("created_at"),
    _ts("started_at", nullable=True),
    _ts("finished_at", nullable=True),
    sa.Index(None, "status", "created_at"),
    sa.Index(None, "account_id", "id"),
)


# -- the signed log: signatures, checkpoints, signing keys, erasure (migration 0004) ----------------

#: Every node's audit signing key, public halves only (each private key is a file in its node's data
#: directory: see ``krabs.audit.signing``); ``retired_at`` is set by key rotation.
audit_signing_keys = sa.Table(
    "audit_signing_keys",
    metadata,
    sa.Column("name", sa.String(80), primary_key=True),
    sa.Column("public_key", sa.String(64), nullable=False),
    _ts("created_at"),
    _ts("retired_at", nullable=True),
)

#: Which key signs which of an account's records: seq ``from_seq`` to ``to_seq`` (NULL while open).
audit_account_keys = sa.Table(
    "audit_account_keys",
    metadata,
    sa.Column("account_id", ID, sa.ForeignKey("accounts.id"), nullable=False),
    sa.Column("name", sa.String(80), nullable=False),
    sa.Column("public_key", sa.String(64), nullable=False),
    sa.Column("from_seq", sa.BigInteger, nullable=False),
    sa.Column("to_seq", sa.BigInteger),
    _ts("created_at"),
    sa.PrimaryKeyConstraint("account_id", "name"),
)

#: Signed tree heads (C2SP signed notes); ``frontier`` is the tree's compact range (hex hashes,
#: comma-separated) from which the next checkpoint grows without re-reading the log.
audit_checkpoints = sa.Table(
    "audit_checkpoints",
    metadata,
    sa.Column("account_id", ID, sa.ForeignKey("accounts.id"), nullable=False),
    sa.Column("size", sa.BigInteger, nullable=False),
    sa.Column("root", sa.String(64), nullable=False),
    sa.Column("frontier", sa.Text, nullable=False),
    sa.Column("note", sa.Text, nullable=False),
    sa.Column("reason", sa.String(16), nullable=False),
    _ts("created_at"),
    sa.PrimaryKeyConstraint("account_id", "size"),
)

#: Audit payloads erased for GDPR (``contact.delete`` with ``erase``): which contact, which action
#: erased it and that action's seq, so verification reports "erased at #N" instead of missing.
contact_erasures = sa.Table(
    "contact_erasures",
    metadata,
    sa.Column("account_id", ID, sa.ForeignKey("accounts.id"), nullable=False),
    sa.Column("payload_digest", sa.String(64), nullable=False),
    sa.Column("contact_id", ID, nullable=False),
    sa.Column("action_id", ID, nullable=False),
    sa.Column("erased_seq", sa.BigInteger),
    sa.PrimaryKeyConstraint("account_id", "payload_digest"),
    sa.Index(None, "account_id", "action_id"),
)


#: Data keys (migration 0006): one AES-256 key (base64) per contact whose personal data audit
#: payloads hold, and one per account for payloads touching no contact. Erasing a contact deletes
#: its key; an account export carries the live keys only.
audit_data_keys = sa.Table(
    "audit_data_keys",
    metadata,
    sa.Column("account_id", ID, sa.ForeignKey("accounts.id"), nullable=False),
    sa.Column("subject_id", ID, nullable=False),
    sa.Column("key", sa.String(44), nullable=False),
    _ts("created_at"),
    sa.PrimaryKeyConstraint("account_id", "subject_id"),
)


# -- web sessions: the dashboard's cookie sessions (migration 0005) ---------------------------------

web_sessions = sa.Table(
    "web_sessions",
    metadata,
    sa.Column("id", sa.String(64), primary_key=True),  # SHA-256 of the cookie's secret
    sa.Column("account_id", ID, sa.ForeignKey("accounts.id"), nullable=False),
    sa.Column("key_id", ID, nullable=False),
    sa.Column("key_hash", sa.String(64), nullable=False),
    _ts("created_at"),
    _ts("expires_at"),
    _ts("revoked_at", nullable=True),
    sa.Index(None, "key_id"),
)


#: Tables whose rows an audit image may describe, by name; undo restores rows through this map.
BY_NAME: dict[str, sa.Table] = {t.name: t for t in metadata.sorted_tables}
