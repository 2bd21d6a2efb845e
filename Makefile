# The same commands for developers and CI. `make run` and `make test` set up
# everything they need (a virtualenv in .venv, buf from npm) on first use.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
NODE_STAMP := node_modules/.installed-stamp

.PHONY: install run test test-faults test-browser lint typecheck proto gen breaking bench bench-smoke clean

# The client (client/, its own distribution) and the gateway, which depends on it.
$(STAMP): pyproject.toml client/pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ./client -e '.[dev]'
	touch $@

$(NODE_STAMP): package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	touch $@

install: $(STAMP) $(NODE_STAMP)

## Run the gateway: delivers to Telegram with BOT_TOKEN set, else to the sandbox simulator.
run: $(STAMP)
	$(BIN)/notigate serve $(if $(BOT_TOKEN),,--sandbox)

## The whole suite: lint, types, tests (fault-injection tests: make test-faults).
test: install lint typecheck
	$(BIN)/pytest

test-faults: install
	$(BIN)/pytest -m faults

BROWSER_STAMP := $(VENV)/.browser-installed-stamp
CHROMIUM := /usr/bin/chromium
SUDO := $(shell [ "$$(id -u)" = 0 ] || command -v sudo)

# Playwright drives Debian's chromium: it never downloads a browser of its own.
$(BROWSER_STAMP): $(STAMP) pyproject.toml
	$(BIN)/python -m pip install --quiet -e ./client -e '.[dev,browser]'
	touch $@

$(CHROMIUM):
	$(SUDO) apt-get install -y chromium || ($(SUDO) apt-get update && $(SUDO) apt-get install -y chromium)

## The dashboard's end-to-end tests in headless Chromium.
test-browser: install $(BROWSER_STAMP) $(CHROMIUM)
	$(BIN)/pytest -m browser

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(STAMP)
	$(BIN)/mypy

## Regenerate the committed Python stubs from proto/.
proto: $(STAMP)
	$(BIN)/python tools/gen_proto.py

## Regenerate the committed TypeScript/JavaScript stubs (examples/node/gen) from proto/.
gen: $(NODE_STAMP)
	node_modules/.bin/buf generate

## Fail on wire- or source-incompatible proto changes since the previous commit
## (needs that commit: clone with fetch-depth >= 2). AGAINST overrides the baseline.
AGAINST ?= .git\#ref=HEAD~1
breaking: $(NODE_STAMP)
	node_modules/.bin/buf breaking --against '$(AGAINST)'

clean:
	rm -rf $(VENV) node_modules .pytest_cache .mypy_cache .ruff_cache

BENCH_STAMP := $(VENV)/.bench-installed-stamp
BENCH_NODE_STAMP := bench/node_modules/.installed-stamp

$(BENCH_STAMP): $(STAMP) pyproject.toml
	$(BIN)/python -m pip install --quiet -e ./client -e '.[bench]'
	touch $@

$(BENCH_NODE_STAMP): bench/package.json bench/package-lock.json
	npm ci --prefix bench --no-audit --no-fund --loglevel=error
	touch $@

## Benchmarks against BullMQ (Node, Python) and arq; writes docs/benchmarks.md and plots.
bench: $(BENCH_STAMP) $(BENCH_NODE_STAMP)
	$(BIN)/python bench/run.py $(BENCH_ARGS)

## Every benchmark scenario once with tiny counts (< 1 min); fails only if one errors.
bench-smoke: $(BENCH_STAMP) $(BENCH_NODE_STAMP)
	$(BIN)/python bench/run.py --smoke $(BENCH_ARGS)
