# Two commands on a fresh machine: `make demo` and `make test`.
# Everything is installed from pyproject.toml, pinned by constraints.txt.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
MITM_VENV  := .venv-mitm
MITM_STAMP := $(MITM_VENV)/.installed
DOCS_STAMP := $(VENV)/.docs-installed

.PHONY: venv demo test lint typecheck pytest mitm browser bench bench-tools docs lock clean

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip setuptools wheel
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[dev]'
	touch $(STAMP)

venv: $(STAMP)

# mitmproxy pins h11<=0.14 and clashes with httpx: it lives in its own virtualenv.
$(MITM_STAMP): mitm-constraints.txt
	$(PYTHON) -m venv $(MITM_VENV)
	$(MITM_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(MITM_VENV)/bin/python -m pip install --quiet -c mitm-constraints.txt 'mitmproxy>=11,<12'
	touch $(MITM_STAMP)

mitm: $(MITM_STAMP)

# Browser tests drive Debian's Chromium (Playwright's own browser download is not used).
browser:
	@if [ ! -x /usr/bin/chromium ]; then \
		if [ "$$(id -u)" = 0 ]; then \
			apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
		else \
			echo "make browser: /usr/bin/chromium is missing (apt-get install chromium as root); browser tests will skip"; \
		fi; \
	fi

demo: $(STAMP)
	$(BIN)/strangler demo

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports

typecheck: $(STAMP)
	$(BIN)/mypy

pytest: $(STAMP) $(MITM_STAMP) browser
	$(BIN)/pytest

test: lint typecheck pytest

# The proxy benchmark compares against wrk-driven nginx; both are Debian packages.
bench-tools:
	@command -v wrk >/dev/null && command -v nginx >/dev/null || { \
		if [ "$$(id -u)" = 0 ]; then \
			apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk nginx >/dev/null; \
		else echo "make bench-tools: install wrk and nginx to compare against nginx"; fi; }

bench: $(STAMP) $(MITM_STAMP) bench-tools
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[dev,bench]'
	$(BIN)/python bench/proxy.py --shadow
	$(BIN)/python bench/dualwrite.py
	flock /tmp/strangler-bench.lock $(BIN)/python bench/capture_designs.py
	flock /tmp/strangler-bench.lock $(BIN)/python bench/capture_install.py
	$(BIN)/python bench/reconcile.py
	flock /tmp/strangler-bench.lock $(BIN)/python bench/cutover.py
	flock /tmp/strangler-bench.lock $(BIN)/python bench/saga.py

# The documentation site: mkdocs-material, references generated from the code at build
# time (docs/hooks/); --strict turns a broken link or a missing page into a failure.
$(DOCS_STAMP): $(STAMP)
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[dev,docs]'
	touch $(DOCS_STAMP)

docs: $(DOCS_STAMP)
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict --site-dir site

# Re-resolve the pinned dependency set (run after changing pyproject.toml).
lock:
	rm -rf .venv-lock
	$(PYTHON) -m venv .venv-lock
	.venv-lock/bin/python -m pip install --quiet -e '.[dev,bench,docs]'
	.venv-lock/bin/python -m pip freeze --exclude-editable > constraints.txt
	rm -rf .venv-lock

clean:
	rm -rf $(VENV) $(MITM_VENV) var
