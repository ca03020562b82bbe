# Two commands on a fresh machine: `make run` and `make test`. Everything else is optional.
# Every install comes from a lock file: uv.lock for the service and its tools,
# requirements/minimums.txt for the declared minimums. `make lock` updates both.
PYTHON ?= python3
UV_VERSION := 0.13.9
# uv itself, pinned, in a venv of its own (it installs the others in seconds).
UV_VENV ?= .venv-uv
UV := $(UV_VENV)/bin/uv
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# The declared minimum of every runtime dependency (.ci/minimums.py), installed once.
MIN_VENV ?= .venv-min
MIN_STAMP := $(MIN_VENV)/.installed
# The newest versions the declared ranges allow, resolved afresh (not locked).
LATEST_VENV ?= .venv-latest
export UV_PROJECT_ENVIRONMENT := $(VENV)
# Python caches compiled bytecode (__pycache__) unless PYTHONDONTWRITEBYTECODE is set, as it
# is on some machines and containers. Then every process compiles each module it imports from
# source again: the suite starts the service and its commands as subprocesses dozens of times,
# and each one spent about a second compiling FastAPI, pydantic and redis-py.
unexport PYTHONDONTWRITEBYTECODE

.PHONY: run test test-suite test-fuzz prometheus test-min test-latest lock check lint typecheck fmt docs docs-check docs-site bench clean client-sync

# The interpreter's own pip installs uv into a venv made without pip (2.6 s, against 6 s for a
# venv with its own pip); without that pip (or one too old for --python), the venv gets its own.
PIP_QUIET := -q --disable-pip-version-check --root-user-action=ignore
$(UV):
	@test -x $(UV_VENV)/bin/python || $(PYTHON) -m venv --without-pip $(UV_VENV)
	@if $(PYTHON) -m pip --python $(UV_VENV)/bin/python --version >/dev/null 2>&1; then \
		$(PYTHON) -m pip --python $(UV_VENV)/bin/python install $(PIP_QUIET) "uv==$(UV_VERSION)"; \
	else \
		$(UV_VENV)/bin/python -m ensurepip >/dev/null && \
		$(UV_VENV)/bin/python -m pip install $(PIP_QUIET) "uv==$(UV_VERSION)"; \
	fi

$(STAMP): uv.lock pyproject.toml | $(UV)
	$(UV) sync --frozen --quiet --extra dev --python $(PYTHON)
	@touch $(STAMP)

run: $(STAMP)
	$(BIN)/fm-session-service serve

# The checks and both suites run side by side; each one's output is shown whole when it
# ends (--output-sync), and `make test` fails if any of them does.
test: $(STAMP) prometheus
	@$(MAKE) --no-print-directory -j --output-sync=target test-suite test-fuzz lint typecheck docs-check test-min

# The whole suite, shared among pytest-xdist workers: each test file runs whole on one
# worker, the topology tests (one Sentinel, one Cluster) as one unit, the long ones first
# (tests/conftest.py). TEST_WORKERS=0 runs it in this one process.
# Two workers per core, at most 8: much of the suite waits (failovers, stalled replies,
# scrapes, expiries) and a second worker per core runs while the first one waits.
TEST_WORKERS ?= $(shell n=$$(nproc 2>/dev/null || echo 2); n=$$((n * 2)); \
	if [ $$n -gt 8 ]; then n=8; fi; echo $$n)
# The fuzzer is a job of its own (test-fuzz) that starts with the others: every worker
# collects the whole suite, and schemathesis builds its coverage cases while collecting
# (3 s of CPU) and its plugin loads in 1.6 s; only one process needs either.
FUZZ := tests/security/test_fuzz.py
test-suite: $(STAMP)
	$(BIN)/python -m pytest -n $(TEST_WORKERS) --dist loadfile --no-loadscope-reorder \
		--ignore=$(FUZZ) -p no:schemathesis

# schemathesis against the served OpenAPI document (FUZZ_MAX_EXAMPLES per operation, 100).
test-fuzz: $(STAMP)
	$(BIN)/python -m pytest $(FUZZ) -q -p no:cacheprovider

# prometheus and promtool for tests/ops/test_prometheus_*.py: Debian's package, when missing.
prometheus:
	@sh .ci/prometheus.sh

$(MIN_STAMP): requirements/minimums.txt | $(UV)
	@test -x $(MIN_VENV)/bin/python || $(UV) venv --quiet --python $(PYTHON) $(MIN_VENV)
	$(UV) pip sync --quiet --python $(MIN_VENV)/bin/python --require-hashes requirements/minimums.txt
	$(UV) pip install --quiet --python $(MIN_VENV)/bin/python --no-deps -e .
	@touch $(MIN_STAMP)

# At the declared minimums: the store tests (redis-py internals move between releases) and the
# fast path's comparison with FastAPI's router (FastAPI internals move too). Not the `slow`
# ones nor the stall gauge's own test: they measure how long Redis runs a script on large
# data, which no client version changes, and `make test-suite` runs them.
test-min: $(MIN_STAMP)
	$(MIN_VENV)/bin/python -m pytest tests/store tests/api/test_fast_path.py -q -p no:cacheprovider \
		-m "not slow" --ignore=tests/store/test_stalls.py

# The whole suite against the newest releases the ranges in pyproject.toml allow, so an
# upstream release is noticed before it reaches the lock. Not part of `make test`.
test-latest: | $(UV)
	rm -rf $(LATEST_VENV)
	$(UV) venv --quiet --python $(PYTHON) $(LATEST_VENV)
	$(UV) pip install --quiet --python $(LATEST_VENV)/bin/python --refresh -e ".[dev]"
	$(UV) pip list --python $(LATEST_VENV)/bin/python --outdated >/dev/null || true
	$(LATEST_VENV)/bin/ruff check src tests bench deploy clients/python
	$(LATEST_VENV)/bin/mypy
	$(LATEST_VENV)/bin/python -m pytest -p no:cacheprovider

# The model checker (docs/model-checking.md) for longer, on every topology. Options:
# SEED (first round's seed), DURATION (seconds per topology; 0 = one round),
# TOPOLOGY (standalone|sentinel|cluster|all), DEFECT (re-introduce one), OPS, CLIENTS,
# IGNORE (violation kinds to leave out while a known defect's fix is pending).
SEED ?=
DURATION ?= 1800
TOPOLOGY ?= all
DEFECT ?=
OPS ?= 80
CLIENTS ?= 8
IGNORE ?=
.PHONY: soak model-defects
soak: $(STAMP)
	MODEL_SEED=$(SEED) MODEL_DURATION=$(DURATION) MODEL_TOPOLOGY=$(TOPOLOGY) \
	MODEL_DEFECT=$(DEFECT) MODEL_OPS=$(OPS) MODEL_CLIENTS=$(CLIENTS) MODEL_IGNORE=$(IGNORE) \
		$(BIN)/python -m pytest tests/model/soak.py -p no:cacheprovider -q -x

# The checker finds each of three re-introduced defects within the `make test` budget.
model-defects: $(STAMP)
	$(BIN)/python -m pytest tests/model/defects_demo.py -p no:cacheprovider -q -s

# Update both lock files to the newest versions the ranges allow.
lock: | $(UV)
	$(UV) lock --upgrade
	$(PYTHON) .ci/minimums.py > $(MIN_VENV).constraints
	$(UV) pip compile --quiet --generate-hashes --no-header --python-version 3.11 \
		pyproject.toml requirements/minimums-tools.in -c $(MIN_VENV).constraints \
		-o requirements/minimums.txt
	rm -f $(MIN_VENV).constraints

check: test

lint: $(STAMP)
	$(BIN)/ruff format --check src tests bench deploy clients/python
	$(BIN)/ruff check src tests bench deploy clients/python

typecheck: $(STAMP)
	$(BIN)/mypy

fmt: $(STAMP)
	$(BIN)/ruff format src tests bench deploy clients/python
	$(BIN)/ruff check --fix src tests bench deploy clients/python

docs: $(STAMP)
	$(BIN)/python -m session_service.docs
	$(BIN)/python deploy/grafana/dashboard.py
	$(BIN)/python deploy/prometheus/prometheusrule.py

docs-check: $(STAMP)
	$(BIN)/python -m session_service.docs --check
	$(BIN)/python deploy/grafana/dashboard.py --check
	$(BIN)/python deploy/prometheus/prometheusrule.py --check
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict --quiet --site-dir $$(mktemp -d)

# The blocking Python client, rewritten from the asyncio one (tests/client/test_unasync.py).
client-sync: $(STAMP)
	$(BIN)/python clients/python/unasync.py

# The manual (docs/) as a static site in site/.
docs-site: $(STAMP)
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict

bench: $(STAMP)
	$(BIN)/python -m bench

clean:
	rm -rf $(VENV) $(MIN_VENV) $(LATEST_VENV) $(UV_VENV) site .pytest_cache .mypy_cache .ruff_cache build *.egg-info
