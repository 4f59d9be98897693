# crypto_pulse — `make help` lists the targets. Everything bootstraps .venv from the pinned
# requirements on first use; a fresh machine needs only Python 3.11+ (and Java 17 for Spark).

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
REQUIREMENTS := requirements.txt requirements-dev.txt constraints.txt
export PYTHONPATH := $(CURDIR)

.DEFAULT_GOAL := help
.PHONY: help venv test lint typecheck unit format demo bench run-producer simulator local-aws image package submit-job query run-job clean

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
	$(VENV)/bin/mypy producer spark_jobs devstack deploy bench

unit: $(STAMP) ## pytest only
	$(VENV)/bin/pytest

test: lint typecheck unit ## everything CI runs: lint + types + the test suite

format: $(STAMP) ## apply ruff's fixes and formatting
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

demo: $(STAMP) ## the whole pipeline on this machine, with a report (LIVE=1: the live exchanges; ARGS=...)
	$(PY) -m devstack.demo $(if $(LIVE),--live) $(ARGS)

bench: $(STAMP) ## benchmarks -> bench/results.json, bench/RESULTS.md (ARGS='--only producer --repeat 5')
	@cmp -s requirements-bench.txt $(VENV)/.bench-installed || { \
		$(PY) -m pip install --quiet -r requirements-bench.txt -c constraints.txt \
		&& cp requirements-bench.txt $(VENV)/.bench-installed \
		|| echo "bench: some of requirements-bench.txt did not install; their figures will be null" >&2; }
	$(PY) -m bench $(ARGS)

run-producer: $(STAMP) ## the producer against whatever PRODUCER_*/AWS_* point at
	$(PY) -m producer run

simulator: $(STAMP) ## the exchange simulator alone (prints its URLs)
	$(PY) -m devstack.simulator

local-aws: $(STAMP) ## the local AWS endpoint alone (prints its URL)
	$(PY) -m devstack.aws

image: ## build the producer image (docker, or podman where no Docker engine runs)
	$(if $(shell command -v docker 2>/dev/null),docker build,buildah bud --format docker --isolation chroot) -t crypto-pulse-producer .

package: $(STAMP) ## build build/emr/ for EMR Serverless (DEPS=archive: venv-pack archive, needs PyPI)
	$(PY) -m deploy package $(if $(DEPS),--deps $(DEPS))

submit-job: $(STAMP) ## package, then start JOB=<job> on EMR Serverless (EMR_* variables; ARGS=job args)
	@test -n "$(JOB)" || { echo "usage: make submit-job JOB=<job> [ARGS='...'] [DEPS=archive]" >&2; exit 2; }
	$(PY) -m deploy package $(if $(DEPS),--deps $(DEPS))
	$(PY) -m deploy submit --job $(JOB) $(if $(ARGS),-- $(ARGS))

# DEMO=1: the tables of the last `make demo` (its own catalog, warehouse and raw zone).
DEMO_TABLES := CRYPTO_PULSE_TABLES__CATALOG=crypto_pulse_demo CRYPTO_PULSE_TABLES__WAREHOUSE=var/demo/warehouse CRYPTO_PULSE_RAW_ZONE=var/demo/raw

query: $(STAMP) ## run a saved Athena query (ddl/queries/) on the local tables: make query Q=<name> [LIMIT=N] [FORMAT=json] [DEMO=1]
	@test -n "$(Q)" || { $(PY) -m spark_jobs.queries list; echo 'usage: make query Q=<name> [LIMIT=N] [FORMAT=table|json] [DEMO=1]'; exit 2; }
	$(if $(DEMO),$(DEMO_TABLES)) $(PY) -m spark_jobs.queries run $(Q) $(if $(LIMIT),--limit $(LIMIT)) $(if $(FORMAT),--format $(FORMAT))

run-job: $(STAMP) ## run a streaming job locally against AWS_ENDPOINT_URL: make run-job JOB=<job> [ARGS=--until-drained]
	@test -n "$(JOB)" || { echo "usage: make run-job JOB=<job> [ARGS='...']" >&2; exit 2; }
	$(PY) -m spark_jobs.$(JOB) $(ARGS)

clean: ## remove the venv, caches, build output and local state
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache .hypothesis var build
