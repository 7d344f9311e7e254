#!/usr/bin/env bash
# Runs every fuzz target (func FuzzX in a _test.go file) for a short while:
# seed corpora first, then FUZZTIME (default 5s) of fuzzing each. A failure
# leaves its input under the package's testdata/fuzz/ to reproduce with
# `go test -run FuzzX/<input> ./pkg`.
set -euo pipefail
cd "$(dirname "$0")/.."
fuzztime="${FUZZTIME:-5s}"
grep -rl --include='*_test.go' '^func Fuzz' . | sort | while read -r file; do
  pkg="./$(dirname "${file#./}")"
  for target in $(grep -o '^func Fuzz[A-Za-z0-9_]*' "$file" | cut -d' ' -f2); do
    echo "fuzz: $pkg $target ($fuzztime)"
    # The last line on success; everything (the failing input, or the
    # engine's own error) on failure. Go's fuzz coordinator sometimes ends
    # a run with "context deadline exceeded" and no failing input when its
    # workers are slow to stop at -fuzztime on a busy machine (an engine
    # error, not a finding): such a run is tried once more.
    run() { go test -run '^$' -fuzz "^${target}\$" -fuzztime "$fuzztime" "$pkg" 2>&1; }
    if ! out=$(run); then
      if grep -q 'context deadline exceeded' <<<"$out" && ! grep -q 'Failing input written' <<<"$out"; then
        echo "fuzz: $target: the engine timed out stopping (no failing input); once more"
        out=$(run) || { echo "$out"; exit 1; }
      else
        echo "$out"
        exit 1
      fi
    fi
    echo "$out" | tail -1
  done
done
