# Developer entry points. `make test` is what CI runs (.ci/run); `make run` runs the product locally.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python

.PHONY: setup db-up db-down db-reset lint test test-unit test-reliability run contract clean

setup: $(VENV)/.installed node_modules/.installed
	@scripts/install-system-packages

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	touch $@

node_modules/.installed: package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	touch $@

db-up: setup
	scripts/localdb up

db-down:
	scripts/localdb down

db-reset: setup
	scripts/localdb reset

lint: setup
	$(VENV)/bin/ruff check worker devkit tests
	$(VENV)/bin/mypy

# Everything that needs no database or network, in seconds.
test-unit: setup
	$(PY) -m pytest tests/unit -p no:cacheprovider -q

# Starts the local database if it is not running, runs db lint, pgTAP and pytest, and stops the
# database again (even on failure) if this target started it.
test: setup
	scripts/run-tests

test-reliability: setup
	scripts/run-tests --reliability

run: setup
	scripts/run-local $(ARGS)

# Regenerate the event contract in docs/ (JSON Schema, TypeScript) from worker/events.py.
contract: setup
	scripts/gen-contract

clean:
	-scripts/localdb down
	rm -rf .localdb $(VENV) node_modules .pytest_cache .mypy_cache .ruff_cache .coverage .coverage.*
