"""The tables, one module per concept, all on one ``metadata``; import them from here."""

from __future__ import annotations

import sqlalchemy as sa

from krabs.store.tables.agent_runs import approval_policies, approvals, jobs, run_events
from krabs.store.tables.audit import (
    audit_account_keys,
    audit_actions,
    audit_checkpoints,
    audit_data_keys,
    audit_heads,
    audit_payloads,
    audit_signing_keys,
    audit_targets,
    contact_erasures,
)
from krabs.store.tables.base import ID, TS, metadata
from krabs.store.tables.core import accounts, api_keys, contacts, idempotency_keys, identities, runs
from krabs.store.tables.crm import (
    business_profiles,
    deal_changes,
    deals,
    expenses,
    interaction_participants,
    interactions,
    notes,
    tag_links,
    tags,
    tasks,
)
from krabs.store.tables.web import web_sessions

#: Tables whose rows an audit image may describe, by name; undo restores rows through this map.
BY_NAME: dict[str, sa.Table] = {t.name: t for t in metadata.sorted_tables}

__all__ = [
    "BY_NAME",
    "ID",
    "TS",
    "accounts",
    "api_keys",
    "approval_policies",
    "approvals",
    "audit_account_keys",
    "audit_actions",
    "audit_checkpoints",
    "audit_data_keys",
    "audit_heads",
    "audit_payloads",
    "audit_signing_keys",
    "audit_targets",
    "business_profiles",
    "contact_erasures",
    "contacts",
    "deal_changes",
    "deals",
    "expenses",
    "idempotency_keys",
    "identities",
    "interaction_participants",
    "interactions",
    "jobs",
    "metadata",
    "notes",
    "run_events",
    "runs",
    "tag_links",
    "tags",
    "tasks",
    "web_sessions",
]
