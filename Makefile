# The two commands of the README: `make demo` and `make test`. Each creates .venv and installs what it needs.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.PHONY: install demo test lint typecheck clean bench test-matrix test-distributed

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

# The whole suite, then the distributed deployment test (its own venv, ~6 minutes).
test: lint typecheck
	$(BIN)/pytest
	$(MAKE) test-distributed

# The whole suite on the oldest supported Airflow release and the newest, each in .venv-matrix/.
# `make test-matrix MATRIX_ARGS="3.2.1"` picks versions; `MATRIX_ARGS="-- -k trigger"` passes pytest arguments.
MATRIX_ARGS ?=
test-matrix:
	$(PYTHON) scripts/test_matrix.py $(MATRIX_ARGS)

# Benchmarks against the local emulator; rewrites BENCHMARKS.md. `make bench BENCH_ARGS=--quick` is a smoke run.
BENCH_ARGS ?=
bench: $(STAMP)
	$(BIN)/python benchmarks/run.py $(BENCH_ARGS)

# A real distributed deployment on 127.0.0.1 (CeleryExecutor, PostgreSQL and Redis from PyPI wheels, two workers,
# two triggerers) in its own .venv-distributed; rewrites the measured section of docs/deployment.md.
# `make test-distributed DIST_ARGS="-k fan_out"` passes pytest arguments.
DIST_VENV := .venv-distributed
DIST_STAMP := $(DIST_VENV)/.installed-stamp
DIST_ARGS ?=

$(DIST_STAMP): pyproject.toml tests/distributed/requirements.txt
	@start=$$(date +%s); \
	$(PYTHON) -m venv $(DIST_VENV) && \
	$(DIST_VENV)/bin/python -m pip install --quiet -e . -r tests/distributed/requirements.txt \
		2> $(DIST_VENV)/pip-install.log || { cat $(DIST_VENV)/pip-install.log; exit 1; }; \
	echo $$(( $$(date +%s) - start )) > $(DIST_VENV)/install-seconds; \
	echo "$(DIST_VENV) installed in $$(cat $(DIST_VENV)/install-seconds) s"
	touch $(DIST_STAMP)

test-distributed: $(DIST_STAMP)
	OMS_DISTRIBUTED=1 $(DIST_VENV)/bin/python -m pytest tests/distributed -p no:cacheprovider -v $(DIST_ARGS)

clean:
	rm -rf $(VENV) .venv-matrix .venv-distributed .demo .pytest_cache .mypy_cache .ruff_cache
