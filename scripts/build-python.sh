#!/usr/bin/env bash
# Build the Python package (zuring, with its Rust extension zuring._native) into .venv/.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup-venv.sh
(cd python && VIRTUAL_ENV="$PWD/../.venv" ../.venv/bin/maturin develop --release --quiet)
