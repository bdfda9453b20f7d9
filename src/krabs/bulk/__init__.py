"""Bulk input and output: CSV and vCard parsing, batched contact upserts, CSV export and the whole-
account archive. The parsers are pure (text in, records out); only ``upsert`` and ``archive`` touch
the database, and only through the unit of work or a read-only connection."""
