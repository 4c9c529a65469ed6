# One command per job, the same for a person, the pre-stop hook and CI.
# Everything runs from .venv, installed from the locks (requirements-bootstrap.lock,
# then requirements.lock), so every machine runs the same tool versions.

SHELL := bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help
# A half-written stamp must not make a failed install look done.
.DELETE_ON_ERROR:

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
UV := $(BIN)/uv
# uv never downloads a Python of its own here: the venv's interpreter is the one.
export UV_PYTHON_DOWNLOADS := never
PYTEST_ARGS ?=
LOCK_ARGS ?=

.PHONY: help venv mosquitto system-deps check test smoke-wheel fmt demo bench-ingest bench-dossier bench-alerts bench-eval bench-monitor lock clean

help:
	@echo "make test          lint, type-check and run all tests (what CI runs)"
	@echo "make check         ruff format --check, ruff check, mypy --strict"
	@echo "make smoke-wheel   build the wheel, install it in a clean venv, run it from an empty directory"
	@echo "make fmt           format and auto-fix lint"
	@echo "make demo          run 'coldchain demo' (embedded broker, SQLite)"
	@echo "make bench-ingest  run the ingest benchmark"
	@echo "make bench-dossier time a 30-day, 1-minute shipment's dossier ZIP (43,200 readings)"
	@echo "make bench-alerts  alert latency, reading published → MQTT and webhook, under load"
	@echo "make bench-eval    evaluation of 10M readings: batch, streaming, Python, bare group-by"
	@echo "make bench-monitor the on-arrival monitor's cost per reading, per shipped profile"
	@echo "make venv          create .venv from requirements.lock"
	@echo "make lock          re-resolve requirements.lock after editing dependencies"
	@echo "                   (LOCK_ARGS=--upgrade to take new releases)"
	@echo "make clean         remove .venv and caches"
	@echo "Pass pytest options with PYTEST_ARGS, e.g. make test PYTEST_ARGS='-k mkt -x'"

venv: $(VENV)/.project.stamp

# The venv is created once and then kept: every later step brings it back to
# the lock, so a retry after a failed download never throws away a working venv.
# Step 1: the installer. The machine's pip (any version since 8) only installs
# hashed wheels pinned in requirements-bootstrap.lock: uv, and setuptools, the
# build backend every build of coldchain is held to (--build-constraints).
$(UV): requirements-bootstrap.lock
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' \
	  || { echo "coldchain needs Python >= 3.11; set PYTHON=python3.x" >&2; exit 1; }
	@if ! $(BIN)/python -c '' 2>/dev/null; then \
	  echo "==> creating $(VENV) with $$($(PYTHON) --version)"; \
	  rm -rf $(VENV); \
	  $(PYTHON) -m venv $(VENV) \
	    || { echo "could not create $(VENV); on Debian: apt-get install python3-venv" >&2; exit 1; }; \
	fi
	@echo "==> installing uv and setuptools, pinned and hashed (requirements-bootstrap.lock)"
	@$(BIN)/python -m pip install -qq --disable-pip-version-check --no-deps --require-hashes \
	  -r requirements-bootstrap.lock
	@touch $@

# Step 2: exactly the lock, nothing resolved at install time, nothing else kept.
$(VENV)/.deps.stamp: requirements.lock $(UV)
	@echo "==> installing requirements.lock into $(VENV) (uv pip sync)"
	@$(UV) pip sync --quiet --require-hashes --python $(BIN)/python requirements.lock
	@touch $@

# Step 3: the project itself, editable and --no-deps (the lock installed every
# dependency); uv pip check then catches a dependency added to pyproject.toml
# but not yet to the lock.
$(VENV)/.project.stamp: $(VENV)/.deps.stamp pyproject.toml
	@echo "==> installing coldchain into $(VENV) (editable)"
	@$(UV) pip install --quiet --no-deps --python $(BIN)/python \
	  --build-constraints requirements-bootstrap.lock --editable .
	@$(UV) pip check --quiet --python $(BIN)/python \
	  || { echo "requirements.lock is out of date: run 'make lock'" >&2; exit 1; }
	@touch $@

# System programs the tests need: mosquitto, and poppler-utils for the dossier PDFs.
mosquitto system-deps:
	@scripts/install-system-deps.sh

check: venv
	@echo "==> ruff format --check, ruff check, mypy --strict"
	$(BIN)/ruff format --check .
	$(BIN)/ruff check .
	$(BIN)/mypy --strict coldchain simulators

test: venv mosquitto check
	@echo "==> pytest"
	$(BIN)/python -m pytest $(PYTEST_ARGS)

# The built wheel, installed into a clean venv and run from an empty directory.
smoke-wheel: venv
	@scripts/smoke-wheel.sh

fmt: venv
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

demo: venv
	$(BIN)/coldchain demo

bench-ingest: venv
	$(BIN)/python -m benchmarks.bench_ingest

bench-dossier: venv
	$(BIN)/python -m benchmarks.bench_dossier

bench-alerts: venv
	$(BIN)/python -m benchmarks.bench_alerts

bench-eval: venv
	$(BIN)/python -m benchmarks.bench_eval

bench-monitor: venv
	$(BIN)/python -m benchmarks.bench_monitor

lock: $(UV)
	$(UV) pip compile pyproject.toml --extra dev --universal --python-version 3.11 \
	  --generate-hashes --quiet --custom-compile-command "make lock" $(LOCK_ARGS) -o requirements.lock
	$(UV) pip compile requirements-bootstrap.in --universal --python-version 3.11 \
	  --generate-hashes --quiet --custom-compile-command "make lock" $(LOCK_ARGS) \
	  -o requirements-bootstrap.lock

clean:
	rm -rf $(VENV) build dist *.egg-info .mypy_cache .ruff_cache .pytest_cache .hypothesis
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
