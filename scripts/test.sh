#!/usr/bin/env bash
# Run every test: formatting and lints, the Rust workspace's unit, integration, property and doc
# tests (both IO backends), then the Python package's tests (against zarr-python).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup-venv.sh
cargo fmt --all -- --check
cargo clippy --workspace --all-targets -- -D warnings
cargo test --workspace --all-targets
cargo test --workspace --doc
bash scripts/build-python.sh
.venv/bin/python -m pytest python/tests -q
bash scripts/test-zarr34.sh
