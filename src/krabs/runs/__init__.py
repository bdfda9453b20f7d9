"""Runs: the unit of audit, replay and streaming."""
