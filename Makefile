# Every target works on a fresh machine with Python 3.11 and make: uv is installed when missing.
SHELL := /bin/bash
PYTHON ?= python3
UV := $(shell command -v uv 2>/dev/null || echo "$(PYTHON) -m uv")
RUN := $(UV) run --frozen
DEMO_DIR ?= demo
BENCH_DIR ?= bench-out
PYTEST_ARGS ?=

.PHONY: install browser demo test lint bench clean

install:
	@command -v uv >/dev/null 2>&1 || $(PYTHON) -m uv --version >/dev/null 2>&1 || $(PYTHON) -m pip install --quiet uv
	$(UV) sync --frozen

# Debian's chromium for the report's browser tests (driven by Playwright, which downloads no browser of its own)
browser:
	@command -v chromium >/dev/null 2>&1 || { \
	  SUDO=$$([ "$$(id -u)" = 0 ] || echo sudo); \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq chromium; } \
	  || { echo "make browser: could not install Debian's chromium (needed by the report tests)" >&2; exit 1; }

test: install browser
	$(RUN) pytest -q $(PYTEST_ARGS); rc=$$?; if [ $$rc -eq 5 ]; then echo "no tests ran" >&2; exit 1; fi; exit $$rc

lint: install
	$(RUN) ruff format --check model pipeline jobs tests
	$(RUN) ruff check model pipeline jobs tests
	$(RUN) mypy

demo: install
	$(RUN) python -m jobs.demo --output $(DEMO_DIR)

bench: install
	$(RUN) lwaffect bench --output $(BENCH_DIR)

clean:
	rm -rf .venv $(DEMO_DIR) $(BENCH_DIR)
