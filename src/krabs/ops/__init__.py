"""Operation handlers, one module per noun. Importing this package registers them all."""

from krabs.ops import action, api_key, contact, identity

__all__ = ["action", "api_key", "contact", "identity"]
