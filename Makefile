# Everything a fresh machine needs is installed by `make install` (a local virtualenv in .venv).
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: install demo test lint check bench bench-smoke ci clean

$(STAMP): pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

## Replay the bundled example events against an in-memory AWS world, explaining every decision.
demo: $(STAMP)
	$(VENV)/bin/pipeline-dryrun --world examples/world.yaml examples/events

## The test suite (unit tests on moto in-process; integration tests on moto's server).
test: $(STAMP)
	$(PY) -m pytest

lint: $(STAMP)
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .
	$(PY) -m mypy

## Validate the shipped pipeline and rules, and run the rules' inline tests.
check: $(STAMP)
	$(VENV)/bin/pipeline-dryrun --check

clean:
	rm -rf $(VENV) build dist *.egg-info
