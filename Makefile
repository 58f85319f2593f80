# Everything a fresh machine needs is installed by `make install` (a local virtualenv in .venv).
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
# What the virtualenvs are made with: Python 3.11 (the Lambda runtime's) wherever installed, even beside another
# python3 (one older than requires-python allows, or a newer one, whose build ships no precompiled bytecode).
PYTHON3 ?= $(shell command -v python3.11 2>/dev/null || echo python3)

.PHONY: install lock demo test lint check schemas bench bench-smoke clean build build-PipelineFunction

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON3) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -c constraints.txt -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

## Re-resolve the development environment's versions (the newest pyproject.toml allows) into constraints.txt.
lock:
	rm -rf .lock-venv
	$(PYTHON3) -m venv .lock-venv
	.lock-venv/bin/python -m pip install -q -e '.[dev]'
	{ sed -n '/^#/p' constraints.txt; .lock-venv/bin/python -m pip freeze --exclude-editable; } > constraints.txt.new
	mv constraints.txt.new constraints.txt
	rm -rf .lock-venv

## Replay the bundled example events against an in-memory AWS world, explaining every decision.
demo: $(STAMP)
	$(VENV)/bin/pipeline-dryrun --world examples/world.yaml examples/events

## The test suite (unit tests on moto in-process; integration tests on moto's server), on every core
## (pytest-xdist; TEST_WORKERS=0 runs it in one process).
TEST_WORKERS ?= auto
test: $(STAMP)
	$(PY) -m pytest --numprocesses $(TEST_WORKERS) --maxprocesses 4

lint: $(STAMP)
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .
	$(PY) -m mypy
	$(VENV)/bin/cfn-lint template.yaml

## Validate the shipped pipeline and rules, and run the rules' inline tests.
check: $(STAMP)
	$(VENV)/bin/pipeline-dryrun --check

## The benchmark suite: prints the table, writes bench-results/latest.json, updates docs/performance.md and README.md.
bench: $(STAMP)
	$(PY) -m bench

## The benchmark at tiny sizes (seconds, never judged on timings): keeps the harness from rotting.
bench-smoke: $(STAMP)
	$(PY) -m bench --smoke

## Regenerate the editor JSON Schemas (schemas/*.json) from the step registry; commit the result.
schemas: $(STAMP)
	$(PY) -m tools.schema_export

## The Lambda artifact (build/lambda.zip: code + runtime dependencies only); prints its size.
build: $(STAMP)
	$(PY) scripts/build_lambda.py

# Called by `sam build` (template.yaml: BuildMethod makefile) with ARTIFACTS_DIR set; samconfig.toml makes it run in
# the source tree (no copy of .venv). Without .venv (a fresh clone), the build makes its own environment with the
# runtime dependencies only, which the build needs to validate and stamp the configuration (tools.stamp).
BUILD_VENV ?= .aws-sam/build-venv
BUILD_PY := $(if $(wildcard $(PY)),$(PY),$(BUILD_VENV)/bin/python)

$(BUILD_VENV)/bin/python: pyproject.toml
	$(PYTHON3) -m venv $(BUILD_VENV)
	$(BUILD_VENV)/bin/python -m pip install -q --upgrade pip
	$(BUILD_VENV)/bin/python -m pip install -q .

build-PipelineFunction: $(BUILD_PY)
	$(BUILD_PY) scripts/build_lambda.py --stage-dir "$(ARTIFACTS_DIR)" --no-zip

clean:
	rm -rf $(VENV) build dist *.egg-info
