"""The contract: operations, their models and their errors."""
