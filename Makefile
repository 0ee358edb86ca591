# Lindero: two commands on a fresh machine.
#   make demo   set everything up, start Kafka + services, play a scene, show it live
#   make test   set everything up, provision Kafka, run lint and every test layer
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-$(shell cat pyproject.toml constraints.txt | sha1sum | cut -c1-12)
PYTEST_ARGS ?=

.PHONY: help venv kafka-runtime web chromium lint format test test-unit test-integration demo bench bench-fanout bench-e2e soak clean

help:
	@echo "make demo   - set up and run the live demo (Ctrl-C stops everything)"
	@echo "make test   - set up from scratch and run lint + all tests against a real Kafka"
	@echo "make test-unit, make lint, make format, make web, make bench, make bench-fanout, make bench-e2e, make soak, make clean"

$(STAMP):
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Python 3.11+ is required")'
	@echo "==> creating $(VENV) with $(PYTHON) and installing pinned packages"
	@rm -rf $(VENV)
	@$(PYTHON) -m venv $(VENV)
	@$(BIN)/python -m pip install --quiet --upgrade pip
	@$(BIN)/python -m pip install --quiet --progress-bar off -c constraints.txt -e '.[dev]'
	@touch $(STAMP)

venv: $(STAMP)

kafka-runtime: venv
	@$(BIN)/lindero kafka fetch

# The dashboard and team view (TypeScript, bundled by esbuild into web/dist, served by alerts).
WEB_SOURCES := $(shell find web/src web/static -type f 2>/dev/null) web/build.mjs web/tsconfig.json web/package-lock.json
web/dist/BUILT: $(WEB_SOURCES)
	@command -v npm >/dev/null || { echo "Node.js 18+ and npm are required (Debian: apt-get install nodejs npm)"; exit 2; }
	@echo "==> building the dashboard (npm ci, tsc, esbuild) into web/dist"
	@cd web && npm ci --no-audit --no-fund --silent && npm run --silent build >/dev/null

web: web/dist/BUILT

# Debian's Chromium for the browser tests (Playwright drives it; no browser is ever downloaded).
chromium:
	@command -v chromium >/dev/null || { echo "==> installing Debian's chromium (browser tests)"; apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium fonts-dejavu-core; }

lint: venv
	@echo "==> ruff, mypy, schema freshness"
	@$(BIN)/ruff check .
	@$(BIN)/ruff format --check .
	@$(BIN)/mypy
	@$(BIN)/lindero schemas export --check

format: venv
	@$(BIN)/ruff format .
	@$(BIN)/ruff check --fix .

test-unit: venv
	@$(BIN)/pytest tests/unit $(PYTEST_ARGS)

test-integration: venv kafka-runtime
	@$(BIN)/pytest tests/integration $(PYTEST_ARGS)

test: venv kafka-runtime web chromium lint
	@command -v promtool >/dev/null || { echo "==> installing promtool (checks deploy/prometheus rules)"; apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus; }
	@echo "==> tests (unit, integration, e2e, browser) against a real Kafka the suite starts itself"
	@$(BIN)/pytest tests $(PYTEST_ARGS)

demo: venv kafka-runtime web
	@$(BIN)/lindero demo

bench: venv kafka-runtime
	@command -v wrk >/dev/null || { echo "==> installing wrk (load generator)"; apt-get update -qq && apt-get install -y -qq wrk; }
	@$(BIN)/python bench/ingest.py

bench-fanout: venv kafka-runtime
	@command -v npm >/dev/null || { echo "Node.js 18+ and npm are required (Debian: apt-get install nodejs npm)"; exit 2; }
	@cd bench/node && npm ci --no-audit --no-fund --silent
	@$(BIN)/python bench/fanout.py $(FANOUT_ARGS)

bench-e2e: venv kafka-runtime
	@$(BIN)/python bench/e2e.py $(E2E_ARGS)

soak: venv kafka-runtime
	@$(BIN)/python bench/soak.py $(SOAK_ARGS)

clean:
	@-$(BIN)/lindero kafka down 2>/dev/null
	rm -rf $(VENV) .cache .pytest_cache .mypy_cache .ruff_cache web/node_modules web/dist artifacts
