# crypto_pulse — `make help` lists the targets. Everything bootstraps .venv from the pinned
# requirements on first use; a fresh machine needs only Python 3.11+ (and Java 17 for Spark).

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
REQUIREMENTS := requirements.txt requirements-dev.txt constraints.txt
export PYTHONPATH := $(CURDIR)

.DEFAULT_GOAL := help
.PHONY: help venv test lint typecheck unit format demo run-producer simulator local-aws image clean

help: ## list the targets
	@grep -E '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*## "} {printf "  %-14s %s\n", $$1, $$2}'

$(STAMP): $(REQUIREMENTS)
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet -r requirements-dev.txt -c constraints.txt
	@touch $(STAMP)

venv: $(STAMP) ## create .venv from the pinned requirements

lint: $(STAMP) ## ruff check, ruff format --check, hadolint
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/hadolint Dockerfile

typecheck: $(STAMP) ## mypy (strict on producer/ and spark_jobs/)
	$(VENV)/bin/mypy producer spark_jobs devstack

unit: $(STAMP) ## pytest only
	$(VENV)/bin/pytest

test: lint typecheck unit ## everything CI runs: lint + types + the test suite

format: $(STAMP) ## apply ruff's fixes and formatting
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

demo: $(STAMP) ## the pipeline on this machine: local AWS + exchange simulator + producer
	$(PY) -m devstack.demo

run-producer: $(STAMP) ## the producer against whatever PRODUCER_*/AWS_* point at
	$(PY) -m producer run

simulator: $(STAMP) ## the exchange simulator alone (prints its URLs)
	$(PY) -m devstack.simulator

local-aws: $(STAMP) ## the local AWS endpoint alone (prints its URL)
	$(PY) -m devstack.aws

image: ## build the producer image (docker, or podman where no Docker engine runs)
	$(if $(shell command -v docker 2>/dev/null),docker build,buildah bud --format docker --isolation chroot) -t crypto-pulse-producer .

clean: ## remove the venv and caches
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache .hypothesis var
