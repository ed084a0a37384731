#!/usr/bin/env bash
# Run every test: formatting and lints, the Rust workspace's unit, integration, property and doc
# tests (both IO backends, bounded fuzzing), the Python package's tests (against zarr-python 3.1.6
# on Python 3.11), zarr-python 3.1.6's own suite with zuring's pipeline, the conformance suite,
# and the package and zarr-python 3.4.2's own suite (partly in strict mode) against zarr-python
# 3.4.2 on CPython 3.13.
set -euo pipefail
cd "$(dirname "$0")/.."
# Each step's wall time goes to stderr, and all of them again at the end.
TIMES=()
step() {
  local start=$SECONDS
  "$@"
  TIMES+=("$((SECONDS - start))s  $*")
  echo "[test.sh] $((SECONDS - start))s: $*" >&2
}
# Set-ups that wait on the network and the disk more than on the CPU run in the background
# from the start, each in a session of its own (stopped if this script stops first), so they
# overlap clippy and the Rust builds: the repo's .venv (pip installs, torch among them) and
# CPython 3.13 with its venv (for the zarr 3.4.2 tests at the end; built once into .cache/).
mkdir -p .cache
declare -A BACKGROUND
background() {
  setsid bash "scripts/$1.sh" "${@:2}" > ".cache/$1.log" 2>&1 &
  BACKGROUND[$1]=$!
}
background setup-venv
background setup-venv313 --no-package
trap 'for pid in "${BACKGROUND[@]}"; do { kill -- -"$pid" || kill "$pid" || true; } 2>/dev/null; done; printf "[test.sh] %s\n" "${TIMES[@]}" "total ${SECONDS}s" >&2' EXIT
# Waits for the background set-up scripts/$1.sh; shows its log if it failed.
ready() {
  if ! wait "${BACKGROUND[$1]}"; then
    cat ".cache/$1.log" >&2
    echo "[test.sh] scripts/$1.sh failed (log above)" >&2
    return 1
  fi
}
step cargo fmt --all -- --check
step cargo clippy --workspace --all-targets -- -D warnings
step cargo test --workspace --all-targets
step cargo test --workspace --doc
step ready setup-venv
step bash scripts/build-python.sh
step .venv/bin/python -m pytest python/tests -q -p no:asyncio -n 2 --dist worksteal
# zarr-python 3.1.6's own test suite with zuring's pipeline selected (partly in strict mode).
step bash scripts/test-zarr-suite.sh
# Conformance: fixtures written by zarr-python and tensorstore, negative fixtures; regenerates
# the matrix in spec-tests/README.md from the results.
step .venv/bin/python -m pytest spec-tests -q -p no:cacheprovider -p no:asyncio
step .venv/bin/python spec-tests/report.py
step ready setup-venv313
step bash scripts/test-zarr34.sh
# zarr-python 3.4.2's own test suite with zuring's pipeline selected (partly in strict mode).
step bash scripts/test-zarr-suite.sh 3.4.2
