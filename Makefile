# Two commands on a fresh machine: `make run` starts loglake, `make test` passes every test.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
ARGS ?=

.PHONY: run test lint synth bench-deps clean

$(BIN)/python:
	@$(PYTHON) -c 'import sys; sys.exit("loglake needs Python >= 3.11, found " + sys.version.split()[0]) if sys.version_info < (3, 11) else None'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.installed: $(BIN)/python pyproject.toml
	$(BIN)/python -m pip install --quiet -e .
	@touch $@

$(VENV)/.dev-installed: $(BIN)/python pyproject.toml
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@touch $(VENV)/.installed $@

# Settings come from LOGLAKE_* variables, a TOML file (LOGLAKE_CONFIG) or flags: make run ARGS="--port 9000"
run: $(VENV)/.installed
	$(BIN)/loglake serve $(ARGS)

test: $(VENV)/.dev-installed
	$(BIN)/ruff check .
	$(BIN)/python -m pytest -n auto --maxprocesses 4 --dist loadfile

# The AWS deployment's CloudFormation template (deploy/loglake-aws.json; needs Node.js for the CDK)
synth: $(VENV)/.dev-installed
	$(BIN)/loglake aws synth --config deploy/loglake-aws.json --out cdk.out

lint: $(VENV)/.dev-installed
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

clean:
	rm -rf $(VENV) build src/*.egg-info .pytest_cache
