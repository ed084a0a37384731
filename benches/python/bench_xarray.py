"""xarray + dask over zarr-python: what a dataset user's code gets from each codec pipeline.

Each dataset is a Zarr v3 group holding one of ``array_bench``'s generated arrays (a link to it):
``sat`` (uint16 64 x 2048 x 2048, shards 16 x 1024 x 1024 of 1 x 256 x 256 zstd chunks) and
``nwp`` (float32 32 x 1024 x 1024, unsharded 1 x 256 x 256 blosc-lz4 chunks), opened with
``xarray.open_zarr`` as users do. Workloads:

- ``sat mean (dask, shard chunks)``: ``ds.sat.mean().compute()`` over dask chunks of one shard;
- ``nwp regional time mean (dask, zarr chunks)``: a 512 x 512 region's mean over time, dask
  chunks = zarr chunks (128 tasks);
- ``sat subset (no dask)``: a 4 x 1000 x 1000 window's ``.values`` through xarray's lazy indexing;
- ``nwp point time series (no dask)``: one grid point's 32 values (one chunk per time step);
- ``nwp 128 chunks one by one (no dask)``: 128 reads of one whole chunk each, one after another
  (a loop over a dataset's pieces: each read's fixed cost counts).

Pipelines: zarr-python's default, zarrs-python's, zuring's (each selected for the open and the
compute). Warm and cold cache (cold needs root); best of ``--rounds`` rounds in which the
pipelines take turns. Prints JSON lines and a table (ratios to zarr-python + zarrs-python).
Usage: python benches/python/bench_xarray.py [--data DIR] [--rounds N]
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os

import dask
import numpy as np
import xarray as xr
import zarr

from _common import drop_caches, interleaved

PIPELINES = {"zarr-python (default)": "zarr.core.codec_pipeline.BatchedCodecPipeline"}
if importlib.util.find_spec("zarrs") is not None:
    PIPELINES["zarr-python + zarrs-python"] = "zarrs.ZarrsCodecPipeline"
PIPELINES["zarr-python + zuring"] = "zuring.ZuringCodecPipeline"
BASE = "zarr-python + zarrs-python"


def dataset_dirs(data: str) -> dict[str, str]:
    """Per array, a v3 group next to the generated arrays whose one member links to it (the
    two arrays' dimensions share names at different resolutions, so each is a dataset of its
    own)."""
    groups = {}
    for name in ("sat", "nwp"):
        group = groups[name] = os.path.join(data, f"xarray-{name}.zarr")
        os.makedirs(group, exist_ok=True)
        with open(os.path.join(group, "zarr.json"), "w") as f:
            json.dump({"zarr_format": 3, "node_type": "group", "attributes": {}}, f)
        link = os.path.join(group, name)
        if not os.path.islink(link):
            os.symlink(os.path.abspath(os.path.join(data, f"{name}.zarr")), link)
    return groups


def workloads(groups: dict[str, str]):
    """Per workload: (the arrays it reads, bytes of the chunks it decodes, fn() -> result)."""

    def open_ds(name, chunks):
        return xr.open_zarr(groups[name], consolidated=False, zarr_format=3, chunks=chunks)[name]

    def sat_mean():
        return float(open_ds("sat", {"time": 16, "y": 1024, "x": 1024}).mean().compute())

    def nwp_region_mean():
        nwp = open_ds("nwp", {"time": 1, "y": 256, "x": 256})
        return nwp.isel(y=slice(0, 512), x=slice(0, 512)).mean("time").compute().values

    def sat_subset():
        return open_ds("sat", None).isel(time=slice(8, 12), y=slice(300, 1300), x=slice(300, 1300)).values

    def nwp_point():
        return open_ds("nwp", None).isel(y=500, x=500).values

    def nwp_chunk_by_chunk():
        nwp = open_ds("nwp", None)
        return [nwp.isel(time=t % 32, y=slice(256, 512), x=slice(256 * (t // 32), 256 * (t // 32 + 1))).values.sum() for t in range(128)]

    return {
        "sat mean (dask, shard chunks)": (("sat",), 64 * 2048 * 2048 * 2, sat_mean),
        "nwp regional time mean (dask, zarr chunks)": (("nwp",), 32 * 512 * 512 * 4, nwp_region_mean),
        "sat subset (no dask)": (("sat",), 4 * 5 * 5 * 256 * 256 * 2, sat_subset),
        "nwp point time series (no dask)": (("nwp",), 32 * 256 * 256 * 4, nwp_point),
        "nwp 128 chunks one by one (no dask)": (("nwp",), 128 * 256 * 256 * 4, nwp_chunk_by_chunk),
    }


def run(pipeline: str, fn):
    with zarr.config.set({"codec_pipeline.path": pipeline}):
        return fn()


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--data", default="target/bench-data/array")
    p.add_argument("--rounds", type=int, default=3)
    a = p.parse_args()
    groups = dataset_dirs(a.data)
    cold_ok = drop_caches()
    print(
        f"# bench_xarray: xarray {xr.__version__}, dask {dask.__version__} (threads, {os.cpu_count()} cpus), "
        f"zarr {zarr.__version__}; best of {a.rounds} rounds; cold cache {'by drop_caches' if cold_ok else 'unavailable'}"
    )
    results = []
    for name, (arrays, nbytes, fn) in workloads(groups).items():
        paths = [os.path.join(a.data, f"{x}.zarr") for x in arrays]
        expected = None
        for pipeline in PIPELINES.values():  # untimed: imports, pools, and the results agree
            got = run(pipeline, fn)
            if expected is None:
                expected = got
            elif not np.allclose(got, expected, rtol=1e-6):
                raise SystemExit(f"{name}: {pipeline} disagrees with zarr-python's default pipeline")
        for cache in ["warm", "cold"] if cold_ok else ["warm"]:
            fns = {m: (lambda pipeline=pipeline: run(pipeline, fn)) for m, pipeline in PIPELINES.items()}
            best = interleaved(fns, a.rounds, cache == "cold", paths)
            for m, secs in best.items():
                row = dict(workload=name, cache=cache, method=m, seconds=secs, mib_s=nbytes / secs / 2**20)
                results.append(row)
                print(json.dumps(row), flush=True)
    print(f"\n| workload | cache | method | ms | MiB/s of chunks decoded | x {BASE} |\n|---|---|---|---:|---:|---:|")
    for r in results:
        ref = next((x for x in results if (x["workload"], x["cache"], x["method"]) == (r["workload"], r["cache"], BASE)), None)
        ratio = f"{ref['seconds'] / r['seconds']:.2f}x" if ref else "-"
        print(f"| {r['workload']} | {r['cache']} | {r['method']} | {1000 * r['seconds']:.1f} | {r['mib_s']:.0f} | {ratio} |")


if __name__ == "__main__":
    main()
