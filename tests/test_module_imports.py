"""Each module of the bulk package imports on its own, first, in a fresh interpreter: an import
cycle through ``krabs.ops`` (whose import registers every operation, one of which imports the
importers) shows only when a bulk module is the first to load."""

from __future__ import annotations

import pkgutil
import subprocess
import sys

import krabs.bulk

PROBE = """
import importlib, sys
for name in sys.argv[1:]:
    for loaded in [m for m in sys.modules if m == "krabs" or m.startswith("krabs.")]:
        del sys.modules[loaded]
    importlib.import_module(name)
    print("imported", name)
"""


def test_every_bulk_module_imports_first() -> None:
    names = [f"krabs.bulk.{m.name}" for m in pkgutil.iter_modules(krabs.bulk.__path__)]
    assert "krabs.bulk.upsert" in names
    done = subprocess.run(
        [sys.executable, "-c", PROBE, *names], capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split() == [w for n in names for w in ("imported", n)]
