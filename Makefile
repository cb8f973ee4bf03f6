# Two commands on a fresh machine: `make certify` and `make test`.
# Everything is installed into this folder (.venv, .tools); a second run re-installs nothing.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
TOOLS := $(CURDIR)/.tools/bin
TOXIPROXY_VERSION := v2.12.0
TOXIPROXY := $(TOOLS)/toxiproxy-server
STAMP := $(VENV)/.installed

export PATH := $(TOOLS):$(PATH)

.PHONY: all certify test lint types unit scenarios notebooks bench clean toxiproxy venv redis

all: test

venv: $(STAMP)

$(STAMP): requirements.lock pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Python 3.11 or later is needed; set PYTHON=/path/to/python3.11")'
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -r requirements.lock
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --no-deps --no-build-isolation -e .
	@touch $@

# Toxiproxy: a toxiproxy-server already on PATH wins (release package, Homebrew);
# otherwise build the pinned release from its Go module into .tools/bin.
toxiproxy: $(STAMP)
	@if [ -x "$(TOXIPROXY)" ] || command -v toxiproxy-server >/dev/null 2>&1; then \
		exit 0; \
	elif command -v go >/dev/null 2>&1; then \
		echo "installing toxiproxy-server $(TOXIPROXY_VERSION) into .tools/bin"; \
		mkdir -p "$(TOOLS)" && \
		GOBIN="$(TOOLS)" go install github.com/Shopify/toxiproxy/v2/cmd/server@$(TOXIPROXY_VERSION) && \
		mv "$(TOOLS)/server" "$(TOXIPROXY)"; \
	else \
		echo "toxiproxy-server not found and Go is not installed. Either install Go 1.23+ (https://go.dev/dl) and rerun," >&2; \
		echo "or install Toxiproxy $(TOXIPROXY_VERSION): the .deb/.rpm from its GitHub releases, 'brew install shopify/shopify/toxiproxy'," >&2; \
		echo "or put a toxiproxy-server binary on PATH (or set TOXIPROXY_SERVER=/path/to/it)." >&2; \
		exit 2; \
	fi

# Redis for the store contract tests: Debian's redis-server, installed where it is missing.
redis:
	@command -v redis-server >/dev/null 2>&1 || { \
		echo "installing redis-server from Debian's packages"; \
		if [ "$$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi; \
		$$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq redis-server >/dev/null; \
	}

certify: $(STAMP) toxiproxy
	$(BIN)/harness certify

lint: $(STAMP)
	$(BIN)/ruff check harness fake_upstreams tests scenarios bench
	$(BIN)/ruff format --check harness fake_upstreams tests scenarios bench

types: $(STAMP)
	$(BIN)/mypy

unit: $(STAMP) toxiproxy redis
	$(BIN)/pytest tests

scenarios: $(STAMP) toxiproxy
	$(BIN)/pytest scenarios

notebooks: $(STAMP) toxiproxy
	HARNESS_NOTEBOOK_TEST_MODE=1 $(BIN)/pytest --nbmake --nbmake-timeout=300 notebooks

test: lint types unit scenarios notebooks

bench: $(STAMP) toxiproxy redis
	@for f in bench/bench_*.py; do echo "== $$f"; $(BIN)/python $$f || exit 1; done

clean:
	rm -rf $(VENV) .tools reports .pytest_cache .mypy_cache .ruff_cache
