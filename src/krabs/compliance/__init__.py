"""The compliance suite: scenarios for every operation, runnable against any live endpoint."""
