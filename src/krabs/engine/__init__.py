"""The engine: the only call path. See ``krabs.engine.core`` for its ordered steps."""

from krabs.engine.context import Call, CallRequest, Outcome, Principal
from krabs.engine.core import Engine

__all__ = ["Call", "CallRequest", "Engine", "Outcome", "Principal"]
