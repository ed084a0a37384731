#!/usr/bin/env bash
# Run every test: formatting and lints, the Rust workspace's unit, integration, property and doc
# tests (both IO backends, bounded fuzzing), the Python package's tests (against zarr-python 3.1.6
# on Python 3.11), zarr-python 3.1.6's own suite with zuring's pipeline, the conformance suite,
# and the package and zarr-python 3.4.2's own suite (also in strict mode) against zarr-python
# 3.4.2 on CPython 3.13.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup-venv.sh
cargo fmt --all -- --check
cargo clippy --workspace --all-targets -- -D warnings
cargo test --workspace --all-targets
cargo test --workspace --doc
bash scripts/build-python.sh
.venv/bin/python -m pytest python/tests -q -p no:asyncio
# zarr-python 3.1.6's own test suite with zuring's pipeline selected (and in strict mode).
bash scripts/test-zarr-suite.sh
# Conformance: fixtures written by zarr-python and tensorstore, negative fixtures; regenerates
# the matrix in spec-tests/README.md from the results.
.venv/bin/python -m pytest spec-tests -q -p no:cacheprovider -p no:asyncio
.venv/bin/python spec-tests/report.py
bash scripts/test-zarr34.sh
# zarr-python 3.4.2's own test suite with zuring's pipeline selected (and in strict mode).
bash scripts/test-zarr-suite.sh 3.4.2
