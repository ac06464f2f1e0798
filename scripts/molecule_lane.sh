#!/usr/bin/env bash
# Run the given Molecule scenarios one after another (a "lane"; see the Makefile's molecule target).
# Each scenario's output is teed to .cache/logs/molecule-<scenario>.log and its time is printed.
# On the first failure the lane stops, and the failing assertions and tasks are printed again at
# the end, where a CI log's tail shows them.
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p .cache/logs
for scenario in "$@"; do
  start=$(date +%s)
  if ! molecule test -s "$scenario" 2>&1 | tee ".cache/logs/molecule-$scenario.log"; then
    echo "=== molecule scenario $scenario FAILED after $(( $(date +%s) - start )) s; why (from .cache/logs/molecule-$scenario.log):"
    sed 's/\x1b\[[0-9;]*m//g' ".cache/logs/molecule-$scenario.log" \
      | grep -E '^ *│? *(E  |FAILED|fatal: |failed: )|"msg": ' | cut -c1-400 | tail -n 40
    exit 1
  fi
  echo "molecule scenario $scenario passed in $(( $(date +%s) - start )) s"
done
