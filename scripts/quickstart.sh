#!/usr/bin/env bash
# Build everything and run the main job on a built-in, generated example dataset.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup-venv.sh
# The workspace's libraries and binaries (its tests are built by scripts/test.sh, in debug).
cargo build --release --workspace
bash scripts/build-python.sh
# The main job: random-crop batches (and whole-array reads and writes) on a generated sharded
# zstd array, an unsharded blosc array and an uncompressed sharded array, against zarrs, warm
# and (as root) cold cache.
./target/release/array_bench --quick
