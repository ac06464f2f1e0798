#!/usr/bin/env bash
# Run the given Molecule scenarios one after another (a "lane"; see the Makefile's molecule target).
# Each scenario's output is teed to .cache/logs/molecule-<scenario>.log and its time is printed.
# On the first failure the lane stops, and the failing assertions and tasks are printed again at
# the end, where a CI log's tail shows them.
# MOLECULE_ARGS: more options for `molecule test`, e.g. "--platform-name lm-default-debian13" (one
# of default's two hosts, as the GitHub workflow's matrix runs it).
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p .cache/logs
oldest_bin=$PWD/.venv-oldest/bin
for scenario in "$@"; do
  start=$(date +%s)
  # The scenarios of OLDEST_SCENARIOS (Makefile) run with the oldest supported ansible-core: Molecule
  # runs the ansible-playbook it finds on PATH, and the scenario's tests check which one it was.
  if [[ " ${OLDEST_SCENARIOS:-} " == *" $scenario "* ]]; then
    [ -x "$oldest_bin/ansible-playbook" ] || { echo "molecule_lane: $scenario runs with the oldest ansible-core: run 'make .venv-oldest/bin/.installed' first" >&2; exit 1; }
    LERNMANAGER_EXPECT_ANSIBLE_CORE=$("$oldest_bin/python" -c 'import ansible.release; print(ansible.release.__version__)')
    export LERNMANAGER_EXPECT_ANSIBLE_CORE
    echo "=== molecule scenario $scenario with ansible-core $LERNMANAGER_EXPECT_ANSIBLE_CORE ($oldest_bin)"
    # Its Ansible commands only: Molecule's verifier runs the pytest on PATH, which must be the one
    # with testinfra (.venv).
    mkdir -p .cache/oldest-bin
    ln -sf "$oldest_bin"/ansible* .cache/oldest-bin/
    path=$PWD/.cache/oldest-bin:$PATH
  else
    unset LERNMANAGER_EXPECT_ANSIBLE_CORE
    path=$PATH
  fi
  # shellcheck disable=SC2086  # MOLECULE_ARGS is a list of options
  if ! PATH=$path molecule test -s "$scenario" ${MOLECULE_ARGS:-} 2>&1 | tee ".cache/logs/molecule-$scenario.log"; then
    echo "=== molecule scenario $scenario FAILED after $(( $(date +%s) - start )) s; why (from .cache/logs/molecule-$scenario.log):"
    sed 's/\x1b\[[0-9;]*m//g' ".cache/logs/molecule-$scenario.log" \
      | grep -E '^ *│? *(E  |FAILED|fatal: |failed: )|"msg": ' | cut -c1-400 | tail -n 40
    exit 1
  fi
  echo "molecule scenario $scenario passed in $(( $(date +%s) - start )) s"
done
