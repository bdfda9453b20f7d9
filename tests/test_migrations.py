"""The migrations build exactly the schema ``krabs.store.tables`` declares, on both backends: a table,
column, index or constraint added to one and not the other fails here, not in production."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from krabs.store.db import Store
from krabs.store.migrate import migrate
from krabs.store.tables import metadata


def test_the_migrated_schema_is_the_declared_one(store: Store) -> None:
    migrate(store)
    with store.engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True})
        differences = compare_metadata(context, metadata)
    assert differences == []
