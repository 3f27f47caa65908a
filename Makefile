# Two commands on a fresh machine: `make demo` and `make test`.
# Everything is installed from pyproject.toml, pinned by constraints.txt.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
MITM_VENV  := .venv-mitm
MITM_STAMP := $(MITM_VENV)/.installed

.PHONY: venv demo test lint typecheck pytest mitm bench lock clean

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

demo: $(STAMP)
	$(BIN)/strangler demo

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(STAMP)
	$(BIN)/mypy

pytest: $(STAMP)
	$(BIN)/pytest

test: lint typecheck pytest

bench: $(STAMP) $(MITM_STAMP)
	$(BIN)/python bench/proxy.py

# Re-resolve the pinned dependency set (run after changing pyproject.toml).
lock:
	rm -rf .venv-lock
	$(PYTHON) -m venv .venv-lock
	.venv-lock/bin/python -m pip install --quiet -e '.[dev]'
	.venv-lock/bin/python -m pip freeze --exclude-editable > constraints.txt
	rm -rf .venv-lock

clean:
	rm -rf $(VENV) $(MITM_VENV) var
