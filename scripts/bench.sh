#!/usr/bin/env bash
# Run every benchmark (root for cold-cache figures) and write their output to benches/results/.
# Installs the peers the Python benchmarks compare against into .venv/.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup-venv.sh
.venv/bin/python -m pip install -q zarrs tensorstore matplotlib xarray xbatcher dask
command -v fio >/dev/null || { [ "$(id -u)" = 0 ] && apt-get install -y -qq fio >/dev/null 2>&1 || true; }
cargo build --release -p zuring_benches
bash scripts/build-python.sh
./target/release/io_bench | tee benches/results/io_bench.txt
./target/release/array_bench | tee benches/results/array_bench.txt
./target/release/small_chunks_bench | tee benches/results/small_chunks_bench.txt
# The same small-chunk arrays through zarr-python (reads only; one batch of crops: tensorstore takes
# seconds a crop of the 1M-chunk shard).
.venv/bin/python benches/python/bench_pipeline.py --data target/bench-data/small-chunks --datasets tiny.zarr,labels.zarr --skip-default --reads-only --batches 1 --plot '' | tee benches/results/bench_pipeline_small_chunks.txt
.venv/bin/python benches/python/bench_pipeline.py | tee benches/results/bench_pipeline.txt
# zarr-python 3.4 (FusedCodecPipeline) needs Python >= 3.12: the same benchmark on CPython 3.13.
bash scripts/setup-venv313.sh
.venv313/bin/python benches/python/bench_pipeline.py --plot '' | tee benches/results/bench_pipeline_zarr34.txt
# Packed floats (scale_offset + cast_value, zarr 3.4's codecs): zarr's pipelines vs zuring's.
.venv313/bin/python benches/python/bench_cast_value.py | tee benches/results/bench_cast_value.txt
# Rectilinear chunk grids (zarr 3.4, experimental): zarr's pipelines vs zuring's.
.venv313/bin/python benches/python/bench_rectilinear.py | tee benches/results/bench_rectilinear.txt
.venv/bin/python benches/python/bench_sampler.py | tee benches/results/bench_sampler.txt
# xarray + dask over zarr-python: the pipelines under a dataset user's code.
.venv/bin/python benches/python/bench_xarray.py | tee benches/results/bench_xarray.txt
# bfloat16 training data: tensorstore (zarr-python has no bfloat16) vs zuring.
.venv/bin/python benches/python/bench_ml_types.py | tee benches/results/bench_ml_types.txt
# Opening 200 arrays: zuring, zarr-python, tensorstore.
.venv/bin/python benches/python/bench_open.py | tee benches/results/bench_open.txt
