# The two commands a new user runs: `make run` and `make test`.
# Both create .venv (Python 3.11, torch 2.14.1 + torchvision 0.29.1) if missing.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
DATA   ?= $(if $(EDGEPORT_MNIST_ROOT),$(EDGEPORT_MNIST_ROOT),$(if $(wildcard ../shared/data/mnist/MNIST/raw),../shared/data/mnist,))
RUN    ?= runs/mnist

.PHONY: venv run test lint bench clean

$(VENV)/.installed: pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q "torch==2.14.1" "torchvision==0.29.1"
	$(PY) -m pip install -q -e ".[dev]"
	touch $@

venv: $(VENV)/.installed

run: venv
	$(VENV)/bin/edgeport summary
	$(VENV)/bin/edgeport pipeline $(if $(DATA),--data-dir $(DATA)) --out $(RUN) --force

test: venv
	$(if $(DATA),EDGEPORT_MNIST_ROOT=$(abspath $(DATA)) )$(PY) -m pytest -q

lint: venv
	$(VENV)/bin/ruff check src tests benchmarks examples
	$(VENV)/bin/ruff format --check src tests benchmarks examples

clean:
	rm -rf runs .pytest_cache
