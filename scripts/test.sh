#!/usr/bin/env bash
# Run every test: formatting and lints, the Rust workspace's unit, integration, property and doc
# tests (both IO backends, bounded fuzzing), the Python package's tests (against zarr-python 3.1.6
# on Python 3.11), zarr-python 3.1.6's own suite with zuring's pipeline, the conformance suite,
# and the package and zarr-python 3.4.2's own suite (also in strict mode) against zarr-python
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
# CPython 3.13 and its venv (for the zarr 3.4.2 tests at the end; built once into .cache/) are
# made in the background from the start, in a session of their own (stopped if this script
# stops first): the build's single-threaded stretches and the pip installs overlap the Rust
# builds.
mkdir -p .cache
setsid bash scripts/setup-venv313.sh --no-package > .cache/setup-venv313.log 2>&1 &
VENV313=$!
trap '{ kill -- -"$VENV313" || kill "$VENV313" || true; } 2>/dev/null; printf "[test.sh] %s\n" "${TIMES[@]}" "total ${SECONDS}s" >&2' EXIT
venv313_ready() {
  if ! wait "$VENV313"; then
    cat .cache/setup-venv313.log >&2
    echo "[test.sh] CPython 3.13 / .venv313 set-up failed (log above)" >&2
    return 1
  fi
}
step bash scripts/setup-venv.sh
step cargo fmt --all -- --check
step cargo clippy --workspace --all-targets -- -D warnings
step cargo test --workspace --all-targets
step cargo test --workspace --doc
step bash scripts/build-python.sh
step .venv/bin/python -m pytest python/tests -q -p no:asyncio
# zarr-python 3.1.6's own test suite with zuring's pipeline selected (and in strict mode).
step bash scripts/test-zarr-suite.sh
# Conformance: fixtures written by zarr-python and tensorstore, negative fixtures; regenerates
# the matrix in spec-tests/README.md from the results.
step .venv/bin/python -m pytest spec-tests -q -p no:cacheprovider -p no:asyncio
step .venv/bin/python spec-tests/report.py
step venv313_ready
step bash scripts/test-zarr34.sh
# zarr-python 3.4.2's own test suite with zuring's pipeline selected (and in strict mode).
step bash scripts/test-zarr-suite.sh 3.4.2
