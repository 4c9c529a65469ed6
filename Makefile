# One command per job, the same for a person, the pre-stop hook and CI
# (STYLE.md §10). Everything runs from .venv, installed from requirements.lock,
# so every machine runs the same tool versions.

SHELL := bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help
# A half-written stamp must not make a failed install look done.
.DELETE_ON_ERROR:

PYTHON ?= python3
UV ?= uv
VENV := .venv
BIN := $(VENV)/bin
PIP := $(BIN)/python -m pip
# Progress bars only clutter CI logs.
PIP_INSTALL := $(PIP) install --progress-bar off
PYTEST_ARGS ?=
LOCK_ARGS ?=

.PHONY: help venv mosquitto system-deps check test fmt demo bench-ingest bench-dossier bench-alerts bench-eval lock clean

help:
	@echo "make test          lint, type-check and run all tests (what CI runs)"
	@echo "make check         ruff format --check, ruff check, mypy --strict"
	@echo "make fmt           format and auto-fix lint"
	@echo "make demo          run 'coldchain demo' (embedded broker, SQLite)"
	@echo "make bench-ingest  run the ingest benchmark"
	@echo "make bench-dossier time a 30-day, 1-minute shipment's dossier ZIP (43,200 readings)"
	@echo "make bench-alerts  alert latency, reading published → MQTT and webhook, under load"
	@echo "make bench-eval    evaluation of 10M readings: batch, streaming, Python, bare group-by"
	@echo "make venv          create .venv from requirements.lock"
	@echo "make lock          re-resolve requirements.lock after editing dependencies"
	@echo "                   (needs uv: pip install uv; LOCK_ARGS=--upgrade to take new releases)"
	@echo "make clean         remove .venv and caches"
	@echo "Pass pytest options with PYTEST_ARGS, e.g. make test PYTEST_ARGS='-k mkt -x'"

venv: $(VENV)/.project.stamp

# A changed lock rebuilds the venv from scratch, so packages dropped from the
# lock do not linger and hide a missing pin.
$(VENV)/.deps.stamp: requirements.lock
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' \
	  || { echo "coldchain needs Python >= 3.11; set PYTHON=python3.x" >&2; exit 1; }
	rm -rf $(VENV)
	$(PYTHON) -m venv $(VENV) \
	  || { echo "could not create $(VENV); on Debian: apt-get install python3-venv" >&2; exit 1; }
	$(PIP_INSTALL) --require-hashes -r requirements.lock
	touch $@

# The project itself: editable, and --no-deps because the lock already
# installed every dependency; pip check then catches a dependency added to
# pyproject.toml but not yet to the lock.
$(VENV)/.project.stamp: $(VENV)/.deps.stamp pyproject.toml
	$(PIP_INSTALL) --no-deps --editable .
	$(PIP) check || { echo "requirements.lock is out of date: run 'make lock'" >&2; exit 1; }
	touch $@

# System programs the tests need: mosquitto, and poppler-utils for the dossier PDFs.
mosquitto system-deps:
	@scripts/install-system-deps.sh

check: venv
	$(BIN)/ruff format --check .
	$(BIN)/ruff check .
	$(BIN)/mypy --strict coldchain simulators

test: venv mosquitto check
	$(BIN)/python -m pytest $(PYTEST_ARGS)

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

lock:
	@command -v $(UV) >/dev/null || { echo "make lock needs uv: pip install uv" >&2; exit 1; }
	$(UV) pip compile pyproject.toml --extra dev --universal --python-version 3.11 \
	  --generate-hashes --custom-compile-command "make lock" $(LOCK_ARGS) -o requirements.lock

clean:
	rm -rf $(VENV) build dist *.egg-info .mypy_cache .ruff_cache .pytest_cache .hypothesis
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
