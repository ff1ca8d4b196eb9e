# Two entry points, both install what they need into ./.venv first:
#   make demo   installs meeg-inverse and runs the built-in example
#   make test   installs it with the test extras (and the system packages for
#               off-screen rendering and headless Chromium) and runs the tests
#               (`make test-all` also runs those marked slow)
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
OUT ?= demo_output

.PHONY: demo test test-all install install-test system-deps

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

install: $(BIN)/python
	$(BIN)/python -m pip install -q -e .

install-test: $(BIN)/python system-deps
	$(BIN)/python -m pip install -q -e ".[test]"

system-deps:
	@if [ -f scripts/install_system_deps.sh ]; then bash scripts/install_system_deps.sh; fi

demo: install
	$(BIN)/meeg-inverse demo --out $(OUT) --overwrite

# The suite CI runs; studies and long end-to-end checks are marked `slow`. One
# process per core (at most 4); a test module stays in one process, in order.
PARALLEL := -n auto --maxprocesses 4 --dist loadscope

test: install-test
	$(BIN)/python -m pytest -m "not slow" $(PARALLEL)

test-all: install-test
	$(BIN)/python -m pytest $(PARALLEL)
