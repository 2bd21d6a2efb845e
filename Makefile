# The same commands for developers and CI. `make run` and `make test` set up
# everything they need (a virtualenv in .venv, buf from npm) on first use.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
NODE_STAMP := node_modules/.installed-stamp

.PHONY: install run test test-faults lint typecheck proto bench bench-smoke clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
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

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(STAMP)
	$(BIN)/mypy

## Regenerate the committed Python stubs from proto/.
proto: $(STAMP)
	$(BIN)/python tools/gen_proto.py

clean:
	rm -rf $(VENV) node_modules .pytest_cache .mypy_cache .ruff_cache
