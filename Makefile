# Tasques developer commands. `make help` lists them.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp
CONFIG ?= config.yaml

.DEFAULT_GOAL := help

.PHONY: help
help: ## list the documented targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-12s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev,bench]'
	@touch $(STAMP)

.PHONY: install
install: $(STAMP) ## create .venv and install Tasques with its dev and benchmark tools (incl. the peer task queues)

.PHONY: run
run: $(STAMP) ## serve on http://127.0.0.1:8080 with the embedded SQLite store (./tasques.db)
	$(VENV)/bin/tasques $(if $(wildcard $(CONFIG)),--config $(CONFIG)) serve

# The dashboard's build tool (TypeScript, pinned in ui/package-lock.json): `npm ci` again only when the lockfile
# changes; the compiled JS under tasques/ui/static/js is committed, so serving never needs Node.
UI_STAMP := ui/node_modules/.ci-stamp

$(UI_STAMP): ui/package-lock.json
	npm ci --prefix ui --no-audit --no-fund
	@touch $(UI_STAMP)

.PHONY: ui
ui: $(UI_STAMP) ## build the dashboard: tsc compiles ui/src to tasques/ui/static/js (commit the result)
	npm run build --prefix ui

.PHONY: lint
lint: $(STAMP) ## ruff and mypy --strict
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

.PHONY: test
test: $(STAMP) ## lint, then the whole suite against SQLite and a real Elasticsearch
	scripts/run-tests $(PYTEST_ARGS)

.PHONY: screenshots
screenshots: $(STAMP) ## refresh docs/screenshots/ (one per dashboard page) from a real browser on SQLite
	$(PY) -m tests.ui.chromium
	TASQUES_UPDATE_SCREENSHOTS=1 $(VENV)/bin/pytest -q -p no:cacheprovider tests/ui/test_screenshots.py

.PHONY: bench
bench: $(STAMP) ## benchmarks on SQLite and a real Elasticsearch, to bench/results/ (BENCH_ARGS=--quick: ~10x smaller)
	$(PY) -m bench.run $(BENCH_ARGS)

.PHONY: example
example: $(STAMP) ## the ciphers demo: Tasques on SQLite, a web producer, a Python and a Go worker (Ctrl-C stops)
	PYTHON=$(PY) example_ciphers/run $(EXAMPLE_ARGS)

.PHONY: es-start
es-start: ## start the test Elasticsearch (prints its URL)
	scripts/elasticsearch start

.PHONY: es-stop
es-stop: ## stop the test Elasticsearch that es-start started
	scripts/elasticsearch stop

.PHONY: openapi
openapi: $(STAMP) ## regenerate openapi.yaml from the code's models
	$(VENV)/bin/tasques openapi > openapi.yaml

.PHONY: clean
clean: ## remove the virtualenv and caches
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache .hypothesis
