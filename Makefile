# One entry point for people and CI. Every target sets up what it needs (tools venv,
# container engine, base images) so that a fresh clone on a bare machine just works.
SHELL := /bin/bash
.SHELLFLAGS := -euo pipefail -c
VENV := .venv
BIN := $(VENV)/bin
PYTHON ?= python3
# Every Molecule scenario CI runs (default covers Debian 12 and 13; the others Debian 12 only).
SCENARIOS ?= default upgrade failed_release zero_downtime sources adopt tls
export ANSIBLE_CONFIG := $(CURDIR)/ansible.cfg
export PATH := $(CURDIR)/$(BIN):$(PATH)

.PHONY: help test lint unit molecule testbed demo demo-destroy build clean bench

help:
	@echo "make demo       deploy the stand-in app into a local 1 CPU / 1 GB Debian container"
	@echo "make test       everything CI runs: lint, fast tests, every Molecule scenario"
	@echo "make lint | unit | molecule [SCENARIOS=default] | testbed | build"

$(BIN)/.installed: requirements-dev.txt
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	@touch $@

test: lint unit molecule

lint: $(BIN)/.installed
	$(BIN)/yamllint -s .
	$(BIN)/ansible-lint --profile production

unit: $(BIN)/.installed
	$(BIN)/pytest -q tests

testbed:
	scripts/testbed.sh

# Each scenario's output also goes to .cache/logs/; when one fails, its failing assertions and tasks
# are printed again at the very end, where a CI log's tail shows them.
molecule: $(BIN)/.installed testbed
	@mkdir -p .cache/logs
	@for s in $(SCENARIOS); do \
	  start=$$(date +%s); \
	  if ! $(BIN)/molecule test -s $$s 2>&1 | tee .cache/logs/molecule-$$s.log; then \
	    echo "=== molecule scenario $$s FAILED after $$(( $$(date +%s) - start )) s; why (from .cache/logs/molecule-$$s.log):"; \
	    sed 's/\x1b\[[0-9;]*m//g' .cache/logs/molecule-$$s.log \
	      | grep -E '^ *│? *(E  |FAILED|fatal: |failed: )|"msg": ' | cut -c1-400 | tail -n 40; \
	    exit 1; \
	  fi; \
	  echo "molecule scenario $$s passed in $$(( $$(date +%s) - start )) s"; \
	done

demo: $(BIN)/.installed testbed
	scripts/demo.sh

demo-destroy:
	scripts/demo.sh --destroy

# Performance benchmark (bench/README.md): about 25 minutes; BENCH_ARGS=--quick for a short run.
# Its own caches and venv: other people's containers share the default apt cache (apt's lock).
bench: $(BIN)/.installed
	@test -x bench/.venv/bin/python || $(PYTHON) -m venv bench/.venv
	bench/.venv/bin/pip install --quiet --disable-pip-version-check -r bench/requirements.txt
	LERNMANAGER_TESTBED_CACHE=$(CURDIR)/.cache/bench-testbed scripts/testbed.sh
	LERNMANAGER_TESTBED_CACHE=$(CURDIR)/.cache/bench-testbed bench/.venv/bin/python bench/run.py $(BENCH_ARGS)

build: $(BIN)/.installed
	$(BIN)/ansible-galaxy collection build --force --output-path .build/

clean:
	rm -rf .build .pytest_cache
