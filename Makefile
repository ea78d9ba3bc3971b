# masklab: `make demo` and `make test` bootstrap .venv themselves (idempotent).
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-dev
# benchmarks run in their own venv: Datumaro (the peer) and its dependencies stay out of .venv
BENCH_VENV  := .venv-bench
BENCH_STAMP := $(BENCH_VENV)/.installed-bench
# torch goes in first, alone: that resolves to the CPU build on disk here (2.13.0+cpu). Left to
# the resolver of the whole dev set, pip backtracks onto the registry's CUDA build (GBs)
TORCH := 2.13.0

.PHONY: install demo test test-fast lint bench clean

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q "torch==$(TORCH)"
	$(BIN)/python -m pip install -q -e ".[dev]"
	@touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/masklab demo

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks examples
	$(BIN)/ruff format --check src tests benchmarks examples
	$(BIN)/mypy

# `make test`: lint, then the whole suite beside a throwaway PostgreSQL and S3 server (moto) on
# loopback (scripts/services.sh), with Debian's chromium for the viewer's browser tests
# (scripts/chromium.sh); `make test-fast`: pytest alone, the store's PostgreSQL and S3 tests
# and, without chromium, the browser tests skip (all fail under CI=true)
test: $(STAMP) lint
	scripts/chromium.sh
	scripts/services.sh run -- $(BIN)/python -m pytest

test-fast: $(STAMP)
	$(BIN)/python -m pytest

$(BENCH_STAMP): pyproject.toml
	@test -x $(BENCH_VENV)/bin/python || $(PYTHON) -m venv $(BENCH_VENV)
	$(BENCH_VENV)/bin/python -m pip install -q --upgrade pip
	$(BENCH_VENV)/bin/python -m pip install -q "torch==$(TORCH)"
	$(BENCH_VENV)/bin/python -m pip install -q -e ".[dev,bench]"
	@touch $(BENCH_STAMP)

# `make bench` runs every benchmarks/bench_*.py; `make bench BENCH="core scale"` a few
bench: $(BENCH_STAMP)
	$(BENCH_VENV)/bin/python benchmarks/run.py $(BENCH)

clean:
	rm -rf $(VENV) $(BENCH_VENV) .pytest_cache .ruff_cache .hypothesis .masklab
