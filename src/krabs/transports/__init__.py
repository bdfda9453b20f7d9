"""Transports: parse a wire format into a ``CallRequest``, call the engine, render the ``Outcome``."""
