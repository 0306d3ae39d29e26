# Two commands on a fresh machine: `make run` starts loglake, `make test` passes every test.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
ARGS ?=

.PHONY: run test lint synth bench-deps clean system-packages

# Debian packages the tests drive for real (browser, syslog senders). One list; `make test` installs what is missing.
DEBIAN_TEST_PACKAGES ?= bsdutils iproute2 rsyslog rsyslog-gnutls chromium

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

# apt-get only when a listed package is missing, with sudo when not root; a machine without apt-get is told what to install
system-packages:
	@missing=""; for p in $(DEBIAN_TEST_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
		command -v apt-get >/dev/null || { echo "the tests need these Debian packages:$$missing" >&2; exit 1; }; \
		sudo=""; [ "$$(id -u)" = 0 ] || sudo=sudo; \
		$$sudo apt-get update -qq && $$sudo apt-get install -y -qq --no-install-recommends $$missing; \
	fi

test: $(VENV)/.dev-installed system-packages
	$(BIN)/ruff check .
	@# Bytecode written even where PYTHONDONTWRITEBYTECODE is set (some images set it): the suite starts hundreds of Python
	@# processes (servers, commands, workers), and each compiled loglake again from source, and each pytest
	@# worker rewrote every test module's asserts again.
	PYTHONDONTWRITEBYTECODE= $(BIN)/python -m pytest -n auto --maxprocesses 4 --dist loadfile --durations=20  # (workers: tests/conftest.py; the slowest listed, to keep the suite under 10 min)

# The AWS deployment's CloudFormation template (deploy/loglake-aws.json; needs Node.js for the CDK)
synth: $(VENV)/.dev-installed
	$(BIN)/loglake aws synth --config deploy/loglake-aws.json --out cdk.out

lint: $(VENV)/.dev-installed
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

clean:
	rm -rf $(VENV) build src/*.egg-info .pytest_cache
