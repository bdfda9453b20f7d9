"""Operation handlers, one module per noun. Importing this package registers them all: every module
in it is imported, so adding an operation is adding a module (or a handler to one)."""

import importlib
import pkgutil

for _info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
    importlib.import_module(f"{__name__}.{_info.name}")
