# `make demo` and `make test` work on a fresh machine: both create the
# virtual environment on first use.

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
# Local CIFAR-10 JPEG archive used by the demo and the tests; empty means
# torchvision's download of CIFAR-10.
DATA ?= $(firstword $(wildcard ../shared/data/cifar10-jpeg.tar.gz))
DEMO_LIMIT ?= 500
PYTEST_ARGS ?=

.PHONY: install demo test clean clean-cache

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --upgrade pip
	$(PY) -m pip install -e '.[dev]'
	touch $@

demo: install
	$(PY) -m experiments.demo --data $(or $(DATA),cifar10) --limit $(DEMO_LIMIT)

# numba checks a cached loop against its own file only, so a loop that
# calls an edited loop in another file would keep the old code: tests start
# from an empty codec cache.
test: install clean-cache
	SPARSE_SPLIT_DATA=$(DATA) $(PY) -m pytest $(PYTEST_ARGS)

clean-cache:
	rm -f codec/__pycache__/*.nbi codec/__pycache__/*.nbc

clean: clean-cache
	rm -rf $(VENV) build *.egg-info .pytest_cache .hypothesis
