# Two commands on a fresh machine: `make run` and `make test`. Everything else is optional.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# The declared minimum of every runtime dependency (.ci/minimums.py), installed once.
MIN_VENV ?= .venv-min
MIN_STAMP := $(MIN_VENV)/.installed

.PHONY: run test test-min check lint typecheck fmt docs docs-check bench clean

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e ".[dev]"
	@touch $(STAMP)

run: $(STAMP)
	$(BIN)/fm-session-service serve

test: $(STAMP) lint typecheck docs-check test-min
	$(BIN)/python -m pytest

$(MIN_STAMP): pyproject.toml .ci/minimums.py
	@test -x $(MIN_VENV)/bin/python || $(PYTHON) -m venv $(MIN_VENV)
	$(MIN_VENV)/bin/python -m pip install -q --upgrade pip
	$(MIN_VENV)/bin/python .ci/minimums.py > $(MIN_VENV)/constraints.txt
	$(MIN_VENV)/bin/python -m pip install -q -c $(MIN_VENV)/constraints.txt -e . \
		pytest pytest-asyncio pytest-timeout
	@touch $(MIN_STAMP)

# The store tests against the declared minimums: redis-py internals move between releases.
test-min: $(MIN_STAMP)
	$(MIN_VENV)/bin/python -m pytest tests/store -q -p no:cacheprovider

check: test

lint: $(STAMP)
	$(BIN)/ruff format --check src tests bench
	$(BIN)/ruff check src tests bench

typecheck: $(STAMP)
	$(BIN)/mypy

fmt: $(STAMP)
	$(BIN)/ruff format src tests bench
	$(BIN)/ruff check --fix src tests bench

docs: $(STAMP)
	$(BIN)/python -m session_service.docs

docs-check: $(STAMP)
	$(BIN)/python -m session_service.docs --check

bench: $(STAMP)
	$(BIN)/python -m bench

clean:
	rm -rf $(VENV) $(MIN_VENV) .pytest_cache .mypy_cache .ruff_cache build *.egg-info
