"""Python-level benchmark: the same generated datasets as ``array_bench``, read and written by
zarr-python (default pipeline), zarr-python 3.4's FusedCodecPipeline (when the installed zarr has
it: run this script on Python >= 3.12 with zarr 3.4), zarr-python + zarrs-python, tensorstore
(reads issued together as futures), zarr-python + zuring's pipeline, and zuring's native
``read_crops``. Peers that are not installed are left out.

Datasets: sat (sharded, zstd), nwp (unsharded, blosc) and raw (sat's values and layout stored
uncompressed: a crop reads only the bytes it needs of each chunk).

Workloads: batches of 32 random crops (4 x 256 x 256), whole-array read (also into a reused
`out=`, warm), whole-array write;
warm and cold cache (cold needs root: the page cache is dropped before each run); for the
sharded dataset, 4 single time steps written into the existing array (each covers the shards
it touches in part).

Prints JSON lines and a table (ratios to zarr-python + zarrs-python), and writes a PNG plot.
Usage: python benches/python/bench_pipeline.py [--data DIR] [--batches N] [--quick] [--plot PNG]
[--datasets sat.zarr,nwp.zarr,raw.zarr]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import shutil

import importlib.util

import numpy as np
import zarr
import zarr.core.codec_pipeline
from zarr.core.buffer import default_buffer_prototype

import zuring
from _common import drop_caches, interleaved

try:
    import tensorstore as ts
except ImportError:  # not installed for this Python
    ts = None

CROP = (4, 256, 256)
BATCH = 32
PIPELINES = {"zarr-python (default)": "zarr.core.codec_pipeline.BatchedCodecPipeline"}
if hasattr(zarr.core.codec_pipeline, "FusedCodecPipeline"):
    PIPELINES["zarr-python Fused (3.4)"] = "zarr.core.codec_pipeline.FusedCodecPipeline"
if importlib.util.find_spec("zarrs") is not None:
    PIPELINES["zarr-python + zarrs-python"] = "zarrs.ZarrsCodecPipeline"
PIPELINES["zarr-python + zuring"] = "zuring.ZuringCodecPipeline"


def crop_of(shape):
    """The crop for an array of `shape`: CROP's last dimensions (2-d arrays: 256 x 256)."""
    return CROP[len(CROP) - len(shape) :]


def crop_batches(shape, batches, seed):
    rng = np.random.default_rng(seed)
    return [np.stack([rng.integers(0, n - c + 1, BATCH) for n, c in zip(shape, crop_of(shape))], axis=1) for _ in range(batches)]


def zarr_crops(path, pipeline, batches):
    with zarr.config.set({"codec_pipeline.path": pipeline}):
        arr = zarr.open_array(path, mode="r")
        aarr = arr._async_array

        async def one_batch(starts):
            crop = crop_of(arr.shape)
            return await asyncio.gather(*[aarr.getitem(tuple(slice(s, s + c) for s, c in zip(st, crop))) for st in starts])

        async def run():
            for starts in batches:
                await one_batch(starts)

        asyncio.run(run())


def ts_open(path):
    return ts.open({"driver": "zarr3", "kvstore": {"driver": "file", "path": path}}, read=True).result()


def ts_crops(path, batches):
    arr = ts_open(path)
    crop = crop_of(arr.shape)
    for starts in batches:
        futures = [arr[tuple(slice(int(s), int(s) + c) for s, c in zip(st, crop))].read() for st in starts]
        for f in futures:
            f.result()


def native_crops(path, batches):
    arr = zuring.open_array(path)
    crop = crop_of(arr.shape)
    out = np.empty((BATCH, *crop), dtype=arr.dtype)
    for starts in batches:
        arr.read_crops(starts, crop, out=out)


def whole_read(method, path):
    if method == "tensorstore":
        return ts_open(path).read().result()
    if method == "zuring native":
        return zuring.open_array(path)[...]
    with zarr.config.set({"codec_pipeline.path": PIPELINES[method]}):
        return zarr.open_array(path, mode="r")[...]


def whole_read_into(method, path, out):
    """The whole array read into `out` (allocated and touched once, reused by every run): no
    page faults of a new output, which every method pays in `whole_read`. tensorstore's Python
    reads have no `out=`."""
    if method == "zuring native":
        return zuring.open_array(path).get_basic_selection(Ellipsis, out=out)
    with zarr.config.set({"codec_pipeline.path": PIPELINES[method]}):
        buf = default_buffer_prototype().nd_buffer.from_numpy_array(out)
        return zarr.open_array(path, mode="r").get_basic_selection(Ellipsis, out=buf)


def whole_write(method, path, data, target):
    """Write `data` as a new array at `target` (removed beforehand, untimed: see `fresh`)."""
    meta = json.load(open(os.path.join(path, "zarr.json")))
    if method == "tensorstore":
        spec = {"driver": "zarr3", "kvstore": {"driver": "file", "path": target}, "metadata": {k: v for k, v in meta.items() if k not in ("zarr_format", "node_type", "attributes", "storage_transformers")}, "create": True}
        arr = ts.open(spec).result()
        arr.write(data).result()
        return
    if method == "zuring native":
        arr = zuring.create_array(target, meta)
        arr[...] = data
        return
    with zarr.config.set({"codec_pipeline.path": PIPELINES[method]}):
        os.makedirs(target, exist_ok=True)
        with open(os.path.join(target, "zarr.json"), "w") as f:
            json.dump(meta, f)
        arr = zarr.open_array(target, mode="r+")
        arr[...] = data


def write_into(method, target, parts):
    """Write each `(index, values)` of `parts`, in order, into the existing array at `target`."""
    if method == "tensorstore":
        arr = ts.open({"driver": "zarr3", "kvstore": {"driver": "file", "path": target}}).result()
        for index, values in parts:
            arr[index].write(values).result()
        return
    native = method == "zuring native"
    with contextlib.nullcontext() if native else zarr.config.set({"codec_pipeline.path": PIPELINES[method]}):
        arr = zuring.open_array(target) if native else zarr.open_array(target, mode="r+")
        for index, values in parts:
            arr[index] = values


def whole_rewrite(method, target, data):
    """Write `data` over the whole existing array at `target`, every stored chunk or shard
    replaced (a recomputed array saved in place)."""
    write_into(method, target, [(Ellipsis, data)])


STEPS = (1, 5, 9, 13)


def step_write(method, target, data):
    """Write `data[k]` into time step `STEPS[k]` of the existing array at `target`, one step after
    another: each step covers the shards it touches in part (read-modify-write)."""
    write_into(method, target, [(slice(s, s + 1), data[k : k + 1]) for k, s in enumerate(STEPS)])


def restore(path, target):
    """Before a timed time-step write: put back the shards it touches (time chunk 0) as they are
    in `path`, and write the page cache back."""
    shutil.rmtree(os.path.join(target, "c", "0"), ignore_errors=True)
    shutil.copytree(os.path.join(path, "c", "0"), os.path.join(target, "c", "0"))
    os.sync()


def fresh(target):
    """Before a timed write: remove the previous target and write dirty pages back, so that no
    method pays for another's deletes or writeback."""
    shutil.rmtree(target, ignore_errors=True)
    os.sync()


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--data", default="target/bench-data/array")
    p.add_argument("--batches", type=int, default=6)
    p.add_argument("--rounds", type=int, default=3, help="rounds in which every method runs once")
    p.add_argument("--quick", action="store_true")
    p.add_argument("--plot", default="benches/results/pipeline_bench.png", help="PNG to write ('': none)")
    p.add_argument("--skip-slow", action="store_true", help="skip the default pipeline's whole-array runs")
    p.add_argument("--skip-default", action="store_true", help="leave zarr-python's own pipelines out (arrays of a million chunks)")
    p.add_argument("--reads-only", action="store_true", help="no writes (the peers' writes of a million chunks take minutes and gigabytes)")
    p.add_argument("--datasets", default="sat.zarr,nwp.zarr,raw.zarr", help="comma-separated, under --data (array_bench generates them)")
    a = p.parse_args()
    if a.skip_default:
        for name in [m for m in PIPELINES if m.startswith("zarr-python (default)") or m.startswith("zarr-python Fused")]:
            del PIPELINES[name]
    batches_n = 2 if a.quick else a.batches
    cold_ok = drop_caches()
    results = []
    import sys

    print(f"# bench_pipeline: crops {CROP} x {BATCH} per batch, {batches_n} batches, {os.cpu_count()} cpus, cold cache {'by drop_caches' if cold_ok else 'unavailable'}; Python {sys.version.split()[0]}, zarr {zarr.__version__}")
    peers = ["tensorstore"] if ts is not None else []
    methods_crop = list(PIPELINES) + peers + ["zuring native read_crops"]
    methods_whole = list(PIPELINES) + peers + ["zuring native"]
    rounds = 1 if a.quick else a.rounds

    def record(name, workload, cache, best, nbytes_of):
        for m, secs in best.items():
            results.append(dict(dataset=name, workload=workload, cache=cache, method=m, seconds=secs, mib_s=nbytes_of / secs / 2**20))
            print(json.dumps(results[-1]), flush=True)

    for name in a.datasets.split(","):
        path = os.path.join(a.data, name)
        arr = zuring.open_array(path)
        nbytes = arr.size * arr.dtype.itemsize
        batches = crop_batches(arr.shape, batches_n, 5)
        crop_bytes = batches_n * BATCH * int(np.prod(crop_of(arr.shape))) * arr.dtype.itemsize
        crop_fns = {}
        for m in methods_crop:
            if m in PIPELINES:
                crop_fns[m] = lambda m=m: zarr_crops(path, PIPELINES[m], batches)
            elif m == "tensorstore":
                crop_fns[m] = lambda: ts_crops(path, batches)
            else:
                crop_fns[m] = lambda: native_crops(path, batches)
        read_fns = {m: (lambda m=m: whole_read(m, path)) for m in methods_whole if not (a.skip_slow and m == "zarr-python (default)")}
        for cache in (["warm", "cold"] if cold_ok else ["warm"]):
            # Methods take turns, round after round (best of the rounds each): a slow spell of
            # the shared machine hits every method, not just one.
            record(name, "crops", cache, interleaved(crop_fns, rounds, cache == "cold", path), crop_bytes)
            record(name, "whole read", cache, interleaved(read_fns, rounds, cache == "cold", path), nbytes)
        out = np.ones(arr.shape, arr.dtype)
        into_fns = {m: (lambda m=m: whole_read_into(m, path, out)) for m in read_fns if m != "tensorstore"}
        record(name, "whole read into out=", "warm", interleaved(into_fns, rounds, False, path), nbytes)
        data = zuring.open_array(path)[...]
        assert np.array_equal(out, data)
        del out
        if a.reads_only:
            continue
        target = os.path.join(a.data, "py-write-target")
        write_fns = {m: (lambda m=m: whole_write(m, path, data, target)) for m in read_fns}
        # Writes vary most from run to run (the file system's state: see the README): arrays
        # smaller than 256 MiB get more rounds, in proportion (nwp: twice as many).
        write_rounds = max(rounds, -(-rounds * (256 << 20) // nbytes))
        record(name, "whole write", "-", interleaved(write_fns, write_rounds, None, path, lambda: fresh(target)), nbytes)

        def stored():
            """Before a timed rewrite: the array written anew (by zuring, untimed), written back."""
            fresh(target)
            whole_write("zuring native", path, data, target)
            os.sync()

        rewrite_fns = {m: (lambda m=m: whole_rewrite(m, target, data)) for m in read_fns}
        record(name, "whole rewrite", "-", interleaved(rewrite_fns, write_rounds, None, path, stored), nbytes)
        assert np.array_equal(zuring.open_array(target)[...], data)
        shutil.rmtree(target, ignore_errors=True)
        if "sharding_indexed" in open(os.path.join(path, "zarr.json")).read():
            # Time steps written into the existing sharded array (every shard covered in part).
            shutil.copytree(path, target)
            steps = data[list(STEPS)]
            step_fns = {m: (lambda m=m: step_write(m, target, steps)) for m in read_fns}
            record(name, "time-step write", "-", interleaved(step_fns, rounds, None, path, lambda: restore(path, target)), steps.nbytes)
            assert np.array_equal(zuring.open_array(target)[list(STEPS)], steps)
            shutil.rmtree(target, ignore_errors=True)
    base = "zarr-python + zarrs-python" if "zarr-python + zarrs-python" in PIPELINES else list(PIPELINES)[1]
    print(f"\n| dataset | workload | cache | method | MiB/s | x {base} |\n|---|---|---|---|---:|---:|")
    for r in results:
        ref = next((x for x in results if x["dataset"] == r["dataset"] and x["workload"] == r["workload"] and x["cache"] == r["cache"] and x["method"] == base), None)
        ratio = f"{r['mib_s'] / ref['mib_s']:.2f}" if ref else "-"
        print(f"| {r['dataset']} | {r['workload']} | {r['cache']} | {r['method']} | {r['mib_s']:.0f} | {ratio} |")
    if not a.plot:
        return
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        groups = sorted({(r["dataset"], r["workload"], r["cache"]) for r in results})
        methods = list(dict.fromkeys(r["method"] for r in results))
        fig, ax = plt.subplots(figsize=(13, 5))
        width = 0.8 / len(methods)
        for i, m in enumerate(methods):
            vals = [next((r["mib_s"] for r in results if (r["dataset"], r["workload"], r["cache"]) == g and r["method"] == m), 0) for g in groups]
            ax.bar(np.arange(len(groups)) + i * width, vals, width, label=m)
        ax.set_xticks(np.arange(len(groups)) + 0.4, [f"{d}\n{w}\n{c}" for d, w, c in groups], fontsize=7)
        ax.set_ylabel("MiB/s (output bytes)")
        ax.set_yscale("log")
        ax.legend(fontsize=7)
        ax.set_title("zuring vs peers (higher is better)")
        fig.tight_layout()
        fig.savefig(a.plot, dpi=110)
        print(f"plot: {a.plot}")
    except Exception as err:  # pragma: no cover
        print(f"no plot: {err}")


if __name__ == "__main__":
    main()
