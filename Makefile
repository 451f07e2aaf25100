# Stratus: `make dev` runs the whole stack locally, `make test` runs every test tier. Both install what they need.
SHELL := /bin/bash
PYTHON ?= python3
UV_VERSION := 0.13.9
UV := $(PYTHON) -m uv
PORT ?= 8000
# pytest's worker processes (pytest-xdist): the tiers wait on servers, streams and workflows much of the time.
TEST_WORKERS ?= 2
STAGE ?= dev
# Frontend origins for the stage's CORS (required for `synth`/`deploy` outside dev stages), comma-separated.
CORS_ORIGINS ?=
# BEDROCK=true lets the chat function call Bedrock with its own role.
BEDROCK ?=
# Days without activity before the daily run archives a conversation (0: never); the settings' default is 90.
ARCHIVE_CONVERSATIONS_AFTER_DAYS ?=
# The stage's own text-enhancement field types, JSON (README, Configuration): added to the built-in ones.
ENHANCE_FIELD_TYPES ?=
CDK_CONTEXT = -c stage=$(STAGE) $(if $(CORS_ORIGINS),-c corsOrigins=$(CORS_ORIGINS)) $(if $(BEDROCK),-c bedrock=$(BEDROCK)) \
	$(if $(ARCHIVE_CONVERSATIONS_AFTER_DAYS),-c archiveConversationsAfterDays=$(ARCHIVE_CONVERSATIONS_AFTER_DAYS)) \
	$(if $(ENHANCE_FIELD_TYPES),-c enhanceFieldTypes='$(ENHANCE_FIELD_TYPES)')
# The CDK CLI, pinned: npm's `latest` is 3.x, which cannot read aws-cdk-lib 2.x assemblies.
CDK := npx --yes aws-cdk@2.1148.1
RUN := $(UV) run --frozen --no-sync
export JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION := 1
export UV_PYTHON := $(PYTHON)

.PHONY: dev test lint format bench synth deploy layers uv install-dev install-all test-servers clean

uv:
	@$(UV) --version >/dev/null 2>&1 || $(PYTHON) -m pip install --quiet "uv==$(UV_VERSION)"

# Runtime and the local stack only: no CDK toolchain, so a newcomer is running in a minute.
install-dev: uv
	@$(UV) sync --frozen --inexact --no-default-groups --group local --quiet

install-all: uv
	@$(UV) sync --frozen --quiet

# The MCP servers the tests run against that come from npm, pinned by tests/mcp_servers/package-lock.json.
MCP_TEST_SERVERS := tests/mcp_servers/node_modules/.package-lock.json
test-servers: $(MCP_TEST_SERVERS)

$(MCP_TEST_SERVERS): tests/mcp_servers/package-lock.json
	npm ci --prefix tests/mcp_servers --no-audit --no-fund --loglevel=error

dev: install-dev
	$(RUN) python -m infra.local --port $(PORT)

# Lint first: CI runs exactly this, so style and types are held to on every change.
test: install-all test-servers
	$(RUN) ruff check .
	$(RUN) ruff format --check .
	$(RUN) mypy
	$(RUN) pytest -n $(TEST_WORKERS)

lint: install-all
	$(RUN) ruff check .
	$(RUN) ruff format --check .
	$(RUN) mypy

format: install-all
	$(RUN) ruff format .
	$(RUN) ruff check --fix .

bench: install-all
	$(RUN) python -m tests.bench

# Lambda layers for arm64 python3.12, built with pip's platform wheels (no Docker). Each requirements.txt is the
# lock's exact pins (layers/export_requirements.py) for what the layers below it lack: --no-deps keeps pip from
# resolving again, which would put a second, newer copy of a lower layer's package on top of it.
# Lambda's /opt is read-only, so bytecode a layer does not ship is compiled again at every cold start (pypdf alone
# ~1.4 s, the provider SDKs more). Where an interpreter of the runtime's version is found (python3.12 on PATH,
# or a pyenv 3.12), the layers ship compiled, checked by hash, not by the files' times; elsewhere they ship source
# only, and say so.
PYTHON_RUNTIME := $(shell for python in python3.12 $$(ls -d $${PYENV_ROOT:-$$HOME/.pyenv}/versions/3.12*/bin/python3.12 2>/dev/null); do \
	$$python -c 'import sys; print(sys.executable)' 2>/dev/null && break; done)
layers: uv
	@for requirements in layers/*/requirements.txt; do \
	  dir=$$(dirname $$requirements); name=$$(basename $$dir); rm -rf $$dir/build; \
	  echo "layer $$name"; \
	  $(PYTHON) -m pip install --quiet --disable-pip-version-check --no-compile --no-deps \
	    --platform manylinux2014_aarch64 --implementation cp --python-version 3.12 --only-binary=:all: \
	    --target $$dir/build/python -r $$requirements || exit 1; \
	  $(if $(PYTHON_RUNTIME),$(PYTHON_RUNTIME) -m compileall -q -j 0 --invalidation-mode unchecked-hash \
	    $$dir/build/python >/dev/null || exit 1;) \
	done
	@$(if $(PYTHON_RUNTIME),,echo "layers: no python3.12 on PATH, so the layers ship without bytecode (slower cold starts)")

synth: install-all layers
	$(CDK) synth $(CDK_CONTEXT) --quiet

deploy: install-all layers
	$(CDK) deploy $(CDK_CONTEXT) --require-approval broadening

clean:
	rm -rf cdk.out .venv layers/*/build .pytest_cache .mypy_cache .ruff_cache tests/mcp_servers/node_modules
