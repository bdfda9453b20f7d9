"""krabs: the CRM that AI agents operate."""

__version__ = "0.1.0"
CONTRACT_VERSION = "1.1"
