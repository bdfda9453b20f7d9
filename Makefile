# Two commands on a fresh machine with only Python and make: `make run` and `make test`.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python

.PHONY: install run test lint bench clean browser

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test]'
	touch $@

install: $(VENV)/.installed

run: install
	$(VENV)/bin/krabs serve

lint: install
	$(PY) -m ruff check src tests bench
	$(PY) -m mypy

# The dashboard's browser tests drive Debian's Chromium (never a browser download of Playwright's own).
browser:
	command -v chromium >/dev/null || (apt-get update && apt-get install -y chromium)

# Two workers: the suite is mostly CPU-bound and every test owns its files, schema and port.
test: install lint browser
	$(PY) -m pytest -q -n 2 --dist worksteal

bench: install
	$(PY) bench/http_write.py

clean:
	rm -rf $(VENV) krabs-data .pytest_cache .mypy_cache .ruff_cache
