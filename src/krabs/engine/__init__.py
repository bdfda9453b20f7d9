"""The engine: the one call path. ``Engine`` is imported lazily so that modules the engine itself
depends on (``krabs.auth``) can import the call context without a cycle."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from krabs.engine.context import Call, CallRequest, Outcome, Principal

if TYPE_CHECKING:
    from krabs.engine.core import Engine

__all__ = ["Call", "CallRequest", "Engine", "Outcome", "Principal"]


def __getattr__(name: str) -> Any:
    if name == "Engine":
        from krabs.engine.core import Engine

        return Engine
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
