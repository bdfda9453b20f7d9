"""krabs: the CRM that AI agents operate."""

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from krabs.client import AsyncClient, Client, KrabsAPIError

__all__ = ["CONTRACT_VERSION", "AsyncClient", "Client", "KrabsAPIError", "__version__"]
__version__ = "0.1.0"
CONTRACT_VERSION = "1.1"


def __getattr__(name: str) -> object:
    """``krabs.Client`` / ``krabs.AsyncClient`` without importing httpx for every ``import krabs``."""
    if name in ("Client", "AsyncClient", "KrabsAPIError"):
        from krabs import client

        return getattr(client, name)
    raise AttributeError(f"module 'krabs' has no attribute {name!r}")
