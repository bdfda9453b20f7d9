"""The live dashboard served at ``/`` by ``krabs serve``: one more thin client of the contract."""
