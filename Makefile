# The two commands of the README: `make demo` and `make test`. Each creates .venv and installs what it needs.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.PHONY: install demo test lint typecheck clean bench test-matrix

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/python scripts/demo.py

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(STAMP)
	$(BIN)/mypy

test: lint typecheck
	$(BIN)/pytest

# The whole suite on the oldest supported Airflow release and the newest, each in .venv-matrix/.
# `make test-matrix MATRIX_ARGS="3.2.1"` picks versions; `MATRIX_ARGS="-- -k trigger"` passes pytest arguments.
MATRIX_ARGS ?=
test-matrix:
	$(PYTHON) scripts/test_matrix.py $(MATRIX_ARGS)

# Benchmarks against the local emulator; rewrites BENCHMARKS.md. `make bench BENCH_ARGS=--quick` is a smoke run.
BENCH_ARGS ?=
bench: $(STAMP)
	$(BIN)/python benchmarks/run.py $(BENCH_ARGS)

clean:
	rm -rf $(VENV) .venv-matrix .demo .pytest_cache .mypy_cache .ruff_cache
