# One entry point for people and CI. Every target sets up what it needs (tools venv,
# container engine, base images) so that a fresh clone on a bare machine just works.
SHELL := /bin/bash
.SHELLFLAGS := -euo pipefail -c
VENV := .venv
BIN := $(VENV)/bin
PYTHON ?= python3
# Every Molecule scenario CI runs (default covers Debian 12 and 13, recovery restores a Debian 12 VPS
# onto a Debian 13 one, fleet is three VPS, one with two instances; the others Debian 12 only).
# `make molecule` runs `default` (a container on each core) first, then two lanes at once: the
# scenarios of LANE_CORE0 pin their container to core 0, those of LANE_CORE1 to core 1, each lane
# with its own apt cache (LERNMANAGER_CORE picks them in the base configuration, .config/molecule/
# config.yml); fleet's containers have their cores and apt caches in its molecule.yml.
# `make molecule SCENARIOS="..."` runs the given ones in turn, with MOLECULE_ARGS passed to each
# (MOLECULE_ARGS="--platform-name lm-default-debian13": one of default's hosts).
# Balanced by the scenarios' times in CI (printed at the end of `make molecule`): sources (three git
# releases, two with a venv of their own), fleet (three hosts, four deploys each) and zero_downtime
# (its kill-point tests) are the longest.
LANE_CORE0 ?= sources tls recovery upgrade
LANE_CORE1 ?= fleet zero_downtime failed_release adopt controller
SCENARIOS ?=
MOLECULE_ARGS ?=
# The oldest ansible-core meta/runtime.yml claims, in a tools venv of its own (requirements-oldest.txt):
# `make oldest` runs the syntax checks and the bad-input tests with it; the scenarios of
# OLDEST_SCENARIOS run with it whenever `make molecule` runs them (core 0's lane starts with `make oldest`).
OLDEST := .venv-oldest
export OLDEST_SCENARIOS ?= upgrade
export ANSIBLE_CONFIG := $(CURDIR)/ansible.cfg
export PATH := $(CURDIR)/$(BIN):$(PATH)

.PHONY: help test lint unit oldest molecule testbed demo demo-destroy build clean bench

help:
	@echo "make demo       deploy Lernmanager (DEMO_SOURCE=checkout, else upstream, else the stand-in) into a local 1 CPU / 1 GB Debian container"
	@echo "make test       everything CI runs: lint, fast tests, every Molecule scenario"
	@echo "make lint (yamllint, ansible-lint, ansible-test sanity) | unit | molecule [SCENARIOS=default] | testbed | build"

$(BIN)/.installed: requirements-dev.txt
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	@touch $@

# On a bare machine the test bed (container engine, debootstrapped base images) takes minutes,
# mostly waiting on the network: it is set up beside lint and the fast tests.
test: $(BIN)/.installed
	@mkdir -p .cache/logs
	@start=$$(date +%s); (scripts/testbed.sh && $(MAKE) --no-print-directory $(OLDEST)/bin/.installed) >.cache/logs/testbed.log 2>&1 & testbed=$$!; \
	  rc=0; $(MAKE) --no-print-directory lint unit || rc=$$?; \
	  tb=0; wait $$testbed || tb=$$?; cat .cache/logs/testbed.log; \
	  echo "lint, unit and the test bed with the oldest tools venv (beside them): $$(( $$(date +%s) - start )) s"; \
	  [ $$rc -eq 0 ] && [ $$tb -eq 0 ]
	@$(MAKE) --no-print-directory molecule

# yamllint, ansible-lint, and ansible-test sanity on the collection as built (scripts/sanity.sh).
lint: $(BIN)/.installed
	$(BIN)/yamllint -s .
	$(BIN)/ansible-lint --profile production
	scripts/sanity.sh

$(OLDEST)/bin/.installed: requirements-oldest.txt
	@test -x $(OLDEST)/bin/python || $(PYTHON) -m venv $(OLDEST)
	$(OLDEST)/bin/pip install --quiet --disable-pip-version-check -r requirements-oldest.txt
	@touch $@

# The oldest supported ansible-core: every playbook's syntax, and every bad input refused by name.
oldest: $(OLDEST)/bin/.installed
	@start=$$(date +%s); $(OLDEST)/bin/ansible-playbook --version 2>&1 | sed -n 1p; \
	  for playbook in playbooks/*.yml; do $(OLDEST)/bin/ansible-playbook --syntax-check -i examples/inventory.yml $$playbook || exit 1; done; \
	  $(OLDEST)/bin/pytest -q -p no:cacheprovider tests/test_bad_input.py || exit 1; \
	  echo "oldest ansible-core: syntax and bad inputs passed in $$(( $$(date +%s) - start )) s"

unit: $(BIN)/.installed
	$(BIN)/pytest -q -n 2 --dist loadgroup tests

testbed:
	scripts/testbed.sh

# Each scenario's output also goes to .cache/logs/; when one fails, its failing assertions and tasks
# are printed again at the very end, where a CI log's tail shows them. Each scenario's time is printed.
molecule: $(BIN)/.installed testbed
	@mkdir -p .cache/logs
	@# The oldest tools venv only when a scenario to run needs it (a single default needs none).
	@if [ -z "$(SCENARIOS)" ] || [ -n "$(filter $(OLDEST_SCENARIOS),$(SCENARIOS))" ]; then \
	  $(MAKE) --no-print-directory $(OLDEST)/bin/.installed; fi
	@if [ -n "$(SCENARIOS)" ]; then MOLECULE_ARGS="$(MOLECULE_ARGS)" scripts/molecule_lane.sh $(SCENARIOS); else \
	  start=$$(date +%s); \
	  scripts/molecule_lane.sh default; \
	  echo "=== lanes: [oldest $(LANE_CORE0)] on core 0 beside [$(LANE_CORE1)] on core 1; each lane's output follows when it ends"; \
	  (LERNMANAGER_CORE=0 $(MAKE) --no-print-directory oldest && LERNMANAGER_CORE=0 scripts/molecule_lane.sh $(LANE_CORE0)) \
	    >.cache/logs/lane-core0.log 2>&1 & lane0=$$!; \
	  LERNMANAGER_CORE=1 scripts/molecule_lane.sh $(LANE_CORE1) >.cache/logs/lane-core1.log 2>&1 & lane1=$$!; \
	  rc0=0; wait $$lane0 || rc0=$$?; rc1=0; wait $$lane1 || rc1=$$?; \
	  cat .cache/logs/lane-core0.log .cache/logs/lane-core1.log; \
	  grep -h "^molecule scenario .* in [0-9]* s\|^oldest ansible-core: .* in [0-9]* s" .cache/logs/lane-core0.log .cache/logs/lane-core1.log || true; \
	  for lane in core0 core1; do grep -h -A 40 "^=== molecule scenario .* FAILED" .cache/logs/lane-$$lane.log || true; done; \
	  echo "molecule: every scenario ran in $$(( $$(date +%s) - start )) s"; \
	  [ $$rc0 -eq 0 ] && [ $$rc1 -eq 0 ]; \
	fi

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
