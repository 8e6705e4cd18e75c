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

.PHONY: install demo test clean

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --upgrade pip
	$(PY) -m pip install -e '.[dev]'
	touch $@

demo: install
	$(PY) -m experiments.demo --data $(or $(DATA),cifar10) --limit $(DEMO_LIMIT)

test: install
	SPARSE_SPLIT_DATA=$(DATA) $(PY) -m pytest $(PYTEST_ARGS)

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .hypothesis
