"""Opening arrays: a dataset of 200 sharded float32 variables (what xarray opens one by one),
each opened by zuring, zarr-python and tensorstore; microseconds per open, best of N passes,
methods interleaved. Opening reads and checks ``zarr.json`` and builds the codec chain; no chunk
is read.

Usage: .venv/bin/python benches/python/bench_open.py [--data DIR] [--repeat N]
"""

from __future__ import annotations

import os
import shutil
import time

import tensorstore as ts
import zarr

import zuring
from _common import arguments

VARIABLES = 200


def main() -> None:
    args = arguments("open")
    shutil.rmtree(args.data, ignore_errors=True)
    paths = [os.path.join(args.data, f"v{i:03d}") for i in range(VARIABLES)]
    for p in paths:
        zarr.create_array(p, shape=(365, 721, 1440), chunks=(1, 181, 360), shards=(8, 724, 1440), dtype="f4", dimension_names=("time", "lat", "lon"))
    methods = {
        "zuring.open_array": lambda p: zuring.open_array(p),
        "zarr.open_array": lambda p: zarr.open_array(p, mode="r"),
        "tensorstore": lambda p: ts.open({"driver": "zarr3", "kvstore": {"driver": "file", "path": p}}).result(),
    }
    best = {m: float("inf") for m in methods}
    for m, fn in methods.items():
        fn(paths[0])  # imports, pools
    for _ in range(max(args.repeat, 5)):
        for m, fn in methods.items():
            t = time.perf_counter()
            for p in paths:
                fn(p)
            best[m] = min(best[m], (time.perf_counter() - t) / VARIABLES)
    print(f"# bench_open: {VARIABLES} sharded float32 arrays, each opened once per pass; best of {max(args.repeat, 5)} passes; {os.cpu_count()} cpus; zarr {zarr.__version__}")
    print(f"{'method':20s} {'us / open':>10s} {'x zarr':>7s} {'x tensorstore':>13s}")
    for m, secs in best.items():
        print(f"{m:20s} {secs * 1e6:10.0f} {best['zarr.open_array'] / secs:7.2f} {best['tensorstore'] / secs:13.2f}")
    shutil.rmtree(args.data, ignore_errors=True)


if __name__ == "__main__":
    main()
