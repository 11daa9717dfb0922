# The CRM's entry points. `make` alone lists them.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= $(shell command -v python3.11 2>/dev/null || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.requirements-installed
# stop/status also work before the virtualenv exists (devctl needs only the standard library)
DEVCTL_PY = $(if $(wildcard $(PY)),$(PY),$(PYTHON))
PYTEST_ARGS ?=

.PHONY: help venv run stop status test test-unit chaos bench lint catalogue generate clean

help: ## list the targets
	@echo "make <target>:"
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed -E 's/^([a-z-]+):.*## (.*)/  \1\t\2/' | expand -t 14

venv: $(STAMP) ## create .venv and install requirements-dev.txt (again only when they change)

$(STAMP): requirements.txt requirements-dev.txt
	@test -x $(PY) || { echo "Creating $(VENV) with $(PYTHON)"; $(PYTHON) -m venv $(VENV); }
	$(PY) -m pip install --disable-pip-version-check -r requirements-dev.txt
	@touch $@

run: venv ## start broker (if needed), migrations, every service, the gateway; seed the demo org
	$(PY) deploy/devctl.py start

stop: ## stop what `make run` started
	@$(DEVCTL_PY) deploy/devctl.py stop

status: ## which processes run, and their health
	@$(DEVCTL_PY) deploy/devctl.py status

test: venv ## the whole test pyramid with a real broker (PostgreSQL tests skip without PostgreSQL)
	$(PY) deploy/devctl.py ensure-broker
	$(PY) deploy/devctl.py ensure-os-packages
	$(PY) -m services.gateway.console.build --browser
	CRM_REQUIRE_BROKER=1 $(VENV)/bin/pytest $(PYTEST_ARGS)

test-unit: venv ## unit tests only (no broker)
	$(VENV)/bin/pytest tests/unit $(PYTEST_ARGS)

chaos: venv ## the fault suite: every fault on SQLite and PostgreSQL, a table of what was lost
	$(PY) deploy/devctl.py ensure-broker
	$(PY) -m tests.chaos $(CHAOS_ARGS)

bench: venv ## benchmarks; prints JSON figures
	$(PY) -m tests.bench

lint: venv ## ruff
	$(VENV)/bin/ruff check .

catalogue: venv ## regenerate docs/events.md from the event schemas
	$(PY) -m shared.catalogue

generate: ## rewrite deploy/Procfile, deploy/k8s, deploy/README's table from shared/registry.py
	$(DEVCTL_PY) -m deploy.generate

clean: stop ## stop, then remove var/ (run state, logs, local databases) and caches
	rm -rf var .ruff_cache .pytest_cache
	find . -path ./$(VENV) -prune -o -name __pycache__ -type d -exec rm -rf {} +
