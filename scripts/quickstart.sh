#!/usr/bin/env bash
# Build everything and run the main job on a built-in, generated example dataset.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup-venv.sh
cargo build --release --workspace --all-targets
# The main job: the batched range-read benchmark on generated files (1 GiB file + 1,000 files),
# warm and (when root) cold cache, against the peers.
./target/release/io_bench --quick
