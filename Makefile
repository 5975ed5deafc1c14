# sessionflow — the two commands of the README are `make demo` and `make test`.
# Every target sets up what it needs: a virtualenv in .venv with the package installed in editable mode
# (pip runs again only when pyproject.toml changes) and, for the tests, PostgreSQL's server binaries and
# Graphviz's dot (the SVG and PNG diagrams), and Chromium with its driver (the console's browser tests).

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.sessionflow-installed
# `make demo` needs only the command line: the package with its `cli` extra (the full `dev` set includes it).
CLI_STAMP := $(VENV)/.sessionflow-cli-installed
PIP_FLAGS ?= --quiet --disable-pip-version-check --progress-bar off
APT_GET := DEBIAN_FRONTEND=noninteractive apt-get
PG_INITDB_GLOB ?= /usr/lib/postgresql/*/bin/initdb
# pytest-xdist workers for `make test` (each starts its own throwaway PostgreSQL and Redis servers).
TEST_WORKERS ?= 2

.PHONY: help venv demo test faults versions lint bench load postgres-binaries graphviz redis-server wrk chromium clean

help:  ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-18s %s\n", $$1, $$2}'

venv: $(STAMP)  ## create .venv and install sessionflow[dev] (again only when pyproject.toml changed)

$(BIN)/python:
	@if ! $(PYTHON) -m venv $(VENV); then \
		rm -rf $(VENV); \
		if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
			echo ">> $(PYTHON) -m venv failed: installing python3-venv"; \
			$(APT_GET) update && $(APT_GET) install -y python3-venv; \
			$(PYTHON) -m venv $(VENV); \
		else \
			echo "error: '$(PYTHON) -m venv' failed; install the venv module (Debian: python3-venv)" >&2; \
			exit 1; \
		fi; \
	fi

$(STAMP): pyproject.toml | $(BIN)/python
	@echo ">> installing sessionflow[dev] into $(VENV)"
	$(BIN)/python -m pip install $(PIP_FLAGS) -e '.[dev]'
	@touch $@ $(CLI_STAMP)

$(CLI_STAMP): pyproject.toml | $(BIN)/python
	@echo ">> installing sessionflow[cli] into $(VENV)"
	$(BIN)/python -m pip install $(PIP_FLAGS) -e '.[cli]'
	@touch $@

demo: $(CLI_STAMP)  ## run `sessionflow demo`: the CLI on the embedded default store (./sessionflow.db)
	$(BIN)/sessionflow demo

postgres-binaries:  ## make sure PostgreSQL's initdb/pg_ctl exist (installs Debian's postgresql as root)
	@if compgen -G '$(PG_INITDB_GLOB)' >/dev/null; then \
		:; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
		echo ">> PostgreSQL server binaries not found: installing Debian's postgresql"; \
		$(APT_GET) update && $(APT_GET) install -y postgresql; \
	elif command -v initdb >/dev/null 2>&1 && command -v pg_ctl >/dev/null 2>&1; then \
		:; \
	else \
		echo "warning: PostgreSQL server binaries (initdb, pg_ctl) not found and not root: the PostgreSQL" \
			"tests will be skipped (under CI=true they fail). Install Debian's postgresql package or set" \
			"SESSIONFLOW_TEST_DATABASE_URL." >&2; \
	fi

graphviz:  ## make sure Graphviz's dot exists, for SVG/PNG diagrams (installs Debian's graphviz as root)
	@if command -v dot >/dev/null 2>&1; then \
		:; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
		echo ">> Graphviz (dot) not found: installing Debian's graphviz"; \
		$(APT_GET) update && $(APT_GET) install -y graphviz; \
	else \
		echo "warning: Graphviz's dot not found and not root: the SVG and PNG diagram tests will be skipped" \
			"(under CI=true they fail). Install Debian's graphviz package." >&2; \
	fi

redis-server:  ## make sure redis-server exists, for the Redis store's tests (installs Debian's redis-server as root)
	@if command -v redis-server >/dev/null 2>&1; then \
		:; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
		echo ">> redis-server not found: installing Debian's redis-server"; \
		$(APT_GET) update && $(APT_GET) install -y redis-server; \
	else \
		echo "warning: redis-server not found and not root: the Redis tests will be skipped (under CI=true" \
			"they fail). Install Debian's redis-server package or set SESSIONFLOW_TEST_REDIS_URL." >&2; \
	fi

wrk:  ## make sure wrk exists, the HTTP load generator of the benchmarks (installs Debian's wrk as root)
	@if command -v wrk >/dev/null 2>&1; then \
		:; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
		echo ">> wrk not found: installing Debian's wrk"; \
		$(APT_GET) update && $(APT_GET) install -y wrk; \
	else \
		echo "warning: wrk not found and not root: the HTTP benchmark (and the benchmark smoke test) cannot" \
			"run. Install Debian's wrk package." >&2; \
	fi

chromium:  ## make sure Chromium and chromedriver exist, for the console's browser tests (installs Debian's as root)
	@if command -v chromium >/dev/null 2>&1 && command -v chromedriver >/dev/null 2>&1; then \
		:; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
		echo ">> chromium or chromedriver not found: installing Debian's chromium and chromium-driver"; \
		$(APT_GET) update && $(APT_GET) install -y chromium chromium-driver; \
	else \
		echo "warning: chromium or chromedriver not found and not root: the console's browser tests will be" \
			"skipped (under CI=true they fail). Install Debian's chromium and chromium-driver packages." >&2; \
	fi

test: venv postgres-binaries graphviz redis-server wrk chromium  ## run the whole test suite (with a throwaway PostgreSQL), ruff and mypy
	$(BIN)/pytest -n $(TEST_WORKERS)
	$(BIN)/ruff check src tests
	$(BIN)/mypy src

# The fault runs are marked `slow` and left out of `make test` (tests/conftest.py deselects them unless slow tests
# are asked for, `-m slow`); this target runs them, with a PostgreSQL and a redis-server of their own (and, for the
# failovers, a PostgreSQL primary with its synchronous standby, a Redis primary with a replica and three Sentinels).
faults: venv postgres-binaries redis-server  ## the fault runs: crash stops of PostgreSQL and Redis, keyed retries through faults, PostgreSQL and Redis failovers, a host lost
	$(BIN)/pytest -m slow tests/reliability/test_crash_stop_outcomes.py tests/reliability/test_idempotent_retries.py tests/reliability/test_pg_failover.py tests/redis/test_sentinel_failover.py tests/reliability/test_several_hosts.py -s -q

# The dependency versions pyproject.toml allows, at both ends: `make versions` installs the package with every extra
# and the test tools into two throwaway virtualenvs under $(VERSIONS_DIR) (uv resolves the lowest versions of the
# direct dependencies in one, the newest of everything in the other), runs the smoke tests in each (the command
# line, the HTTP service, asyncio and SQLite: no server needed) and checks every `--help` of the command line; then
# it builds the wheel and runs `sessionflow demo` from it, installed with only the `cli` extra.
VERSIONS_DIR ?= build/versions
UV := $(VERSIONS_DIR)/tool/bin/uv
SMOKE_TESTS ?= tests/cli/test_commands.py tests/http/test_routes.py tests/http/test_auth.py \
	tests/http/test_app_refuses_async.py tests/http/test_metrics_endpoint.py tests/asyncio/test_facade.py \
	tests/unit/test_async_testing_kit.py tests/timeouts/test_testing_kit.py tests/timeouts/test_settings.py \
	tests/lifecycles/test_custom_lifecycle.py tests/e2e/test_cli_entry.py
SMOKE_SELECT ?= not postgres and not redis
SMOKE_PACKAGES := typer|click|rich|fastapi|starlette|uvicorn|pydantic|pydantic-settings|sqlalchemy|alembic|apscheduler|\
	python-statemachine|pyyaml|psycopg|redis|prometheus-client|greenlet|httpx|pytest

$(UV):
	$(PYTHON) -m venv $(VERSIONS_DIR)/tool
	$(VERSIONS_DIR)/tool/bin/python -m pip install $(PIP_FLAGS) uv

versions: venv $(UV)  ## slow: smoke tests on the lowest and the newest dependency versions allowed, and the wheel with [cli]
	@for resolution in lowest-direct highest; do \
		env="$(VERSIONS_DIR)/$$resolution"; \
		echo ">> $$resolution: installing sessionflow[all,test] into $$env"; \
		rm -rf "$$env"; \
		UV_PYTHON_DOWNLOADS=never $(UV) venv --quiet --python "$$(command -v $(PYTHON))" "$$env"; \
		$(UV) pip install --quiet --python "$$env/bin/python" --resolution "$$resolution" --upgrade -e '.[all,test]'; \
		$(UV) pip freeze --python "$$env/bin/python" | grep -iE '^($(SMOKE_PACKAGES))==' | tr '\n' ' '; echo; \
		"$$env/bin/python" -m pytest -q -n $(TEST_WORKERS) $(SMOKE_TESTS) -k '$(SMOKE_SELECT)'; \
		"$$env/bin/python" -m pytest -q -m slow tests/e2e/test_cli_help.py; \
	done
	SESSIONFLOW_TEST_UV="$(abspath $(UV))" $(BIN)/pytest -q -m slow tests/e2e/test_wheel_cli.py

lint: venv  ## ruff and mypy only
	$(BIN)/ruff check src tests
	$(BIN)/mypy src

bench: venv wrk  ## run the benchmarks
	$(BIN)/python -m benchmarks

load: venv postgres-binaries  ## the long load runs: library threads and HTTP clients on a throwaway PostgreSQL
	$(BIN)/python -m tests.reliability.load
	$(BIN)/python -m tests.reliability.http_load

clean:  ## remove the virtualenv and the tool caches
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache .hypothesis build dist
