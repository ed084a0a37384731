"""Training-loader benchmark: batches of 32 joint crops over the satellite-like array (uint16,
sharded zstd, 64 x 2048 x 2048) and the NWP-like array (float32, blosc-lz4, 32 x 1024 x 1024; half
the resolution in time and space: strides 2), warm and cold cache.

Methods:
- zuring CropSampler (prefetch 2; one batch read at a time, and more: ``readers=2`` by default,
  ``--readers`` for others, each with ``prefetch`` as deep as its readers) -- and the same windows
  through read_crops directly, to measure the sampler's overhead;
- PyTorch DataLoader (batch 32, 2 workers, spawn) over zarr-python, default pipeline;
- the same with the zarrs-python pipeline;
- xbatcher's BatchGenerator over the satellite array (xarray + dask), when installed.

Prints JSON lines and a table (samples/s, MiB/s, ratios, peak memory).
Usage: python benches/python/bench_sampler.py [--data DIR] [--batches N] [--rounds N] [--quick]
       [--workers 2,16] [--readers 2,4]
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import multiprocessing as mp
import os
import subprocess
import sys

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

import zuring
from _common import drop_caches, interleaved

SAT_CROP = (4, 256, 256)
NWP_CROP = (2, 128, 128)
BATCH = 32


def status_mib(field: str) -> float:
    """A memory figure of this process from /proc/self/status (VmRSS, VmHWM), in MiB."""
    with open("/proc/self/status") as f:
        return next(int(l.split()[1]) for l in f if l.startswith(field + ":")) / 1024


def sampler_peak_extra_mib(sat, nwp, batches, readers) -> float:
    """How far a fresh process's resident memory rises, from where it stands with zuring
    imported and the arrays opened, while a CropSampler with `readers` serves an epoch
    (prefetched batches, their buffers, the read-buffer pool as it fills, threads). Measured in
    a child process: in this one, memory freed by the earlier runs is reused and would hide it."""
    code = (
        "import sys; sys.path.insert(0, sys.argv[1]); import bench_sampler as b, zuring; "
        "zuring.open_array(sys.argv[2]); zuring.open_array(sys.argv[3]); "
        "base = b.status_mib('VmRSS'); b.run_sampler(sys.argv[2], sys.argv[3], int(sys.argv[4]), 99, int(sys.argv[5])); "
        "print(b.status_mib('VmHWM') - base)"
    )
    here = os.path.dirname(os.path.abspath(__file__))
    args = [sys.executable, "-c", code, here, sat, nwp, str(batches), str(readers)]
    out = subprocess.run(args, check=True, capture_output=True, text=True)
    return float(out.stdout.split()[-1])


def windows(n, seed, sat_shape):
    rng = np.random.default_rng(seed)
    t = rng.integers(0, (sat_shape[0] - SAT_CROP[0]) // 2 + 1, n) * 2
    y = rng.integers(0, (sat_shape[1] - SAT_CROP[1]) // 2 + 1, n) * 2
    x = rng.integers(0, (sat_shape[2] - SAT_CROP[2]) // 2 + 1, n) * 2
    return np.stack([t, y, x], axis=1)


class ZarrCrops(Dataset):
    """One sample = the satellite crop and the NWP crop of one window, read with zarr-python."""

    def __init__(self, sat, nwp, wins, pipeline, workers=2):
        self.paths, self.wins, self.pipeline = (sat, nwp), wins, pipeline
        self.arrays = None

    def __len__(self):
        return len(self.wins)

    def __getitem__(self, i):
        import zarr

        if self.arrays is None:
            zarr.config.set({"codec_pipeline.path": self.pipeline})
            self.arrays = [zarr.open_array(p, mode="r") for p in self.paths]
        t, y, x = (int(v) for v in self.wins[i])
        sat, nwp = self.arrays
        a = sat[t : t + SAT_CROP[0], y : y + SAT_CROP[1], x : x + SAT_CROP[2]]
        b = nwp[t // 2 : t // 2 + NWP_CROP[0], y // 2 : y // 2 + NWP_CROP[1], x // 2 : x // 2 + NWP_CROP[2]]
        # The worker's peak memory, read once per batch (RUSAGE_CHILDREN would report the parent's
        # size at the fork before the spawned worker's exec).
        hwm = status_mib("VmHWM") if i % BATCH == 0 else 0.0
        return torch.from_numpy(a.astype(np.int32)), torch.from_numpy(b), hwm


class Indices(torch.utils.data.Sampler):
    """Index sampler whose indices change between epochs (it runs in the main process)."""

    def __init__(self):
        self.indices = []

    def __iter__(self):
        return iter(self.indices)

    def __len__(self):
        return len(self.indices)


class Loader:
    """A DataLoader with `workers` persistent (spawned) workers (2: the issue's baseline): started
    and warmed up on other windows before the timed epoch, so worker start-up is not counted."""

    worker_peak_mib = 0.0  # the largest peak resident memory a worker reported

    def __init__(self, sat, nwp, wins, pipeline, workers=2):
        self.half = len(wins) // 2
        self.sampler = Indices()
        ds = ZarrCrops(sat, nwp, wins, pipeline)
        self.loader = DataLoader(ds, batch_size=BATCH, sampler=self.sampler, num_workers=workers,
                                 multiprocessing_context=mp.get_context("spawn"), persistent_workers=True)
        self.epoch(0)

    def epoch(self, part):
        self.sampler.indices = list(range(part * self.half, (part + 1) * self.half))
        n = 0
        for a, b, hwm in self.loader:
            n += a.shape[0]
            Loader.worker_peak_mib = max(Loader.worker_peak_mib, float(hwm.max()))
        return n


def run_sampler(sat, nwp, batches, seed, readers=1):
    s = zuring.CropSampler(
        {"sat": sat, "nwp": nwp}, {"time": SAT_CROP[0], "y": SAT_CROP[1], "x": SAT_CROP[2]}, BATCH,
        seed=seed, samples_per_epoch=batches * BATCH, strides={"nwp": {"time": 2, "y": 2, "x": 2}},
        prefetch=max(2, readers), readers=readers,
    )
    n = 0
    wins = []
    for batch in s:
        n += batch["sat"].shape[0]
        wins.append(np.array(s.last_windows))
    return n, wins


def run_direct(sat, nwp, wins_per_batch):
    a, b = zuring.open_array(sat), zuring.open_array(nwp)
    out_a = np.empty((BATCH, *SAT_CROP), a.dtype)
    out_b = np.empty((BATCH, *NWP_CROP), b.dtype)
    n = 0
    for w in wins_per_batch:
        a.read_crops(w, SAT_CROP, out=out_a)
        b.read_crops(w // 2, NWP_CROP, out=out_b)
        n += len(w)
    return n


def run_xbatcher(sat, wins_n):
    import xarray as xr
    import xbatcher
    import dask.array as da
    import zarr

    arr = zarr.open_array(sat, mode="r")
    ds = xr.DataArray(da.from_zarr(arr), dims=("time", "y", "x")).to_dataset(name="sat")
    # This xbatcher has no shuffling: it walks patches in order (an easier IO pattern).
    gen = xbatcher.BatchGenerator(ds, input_dims={"time": SAT_CROP[0], "y": SAT_CROP[1], "x": SAT_CROP[2]})
    n = 0
    for batch in gen:
        batch["sat"].values  # noqa: B018 - load it
        n += 1
        if n >= wins_n:
            break
    return n


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--data", default="target/bench-data/array")
    p.add_argument("--batches", type=int, default=8)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--quick", action="store_true")
    p.add_argument("--workers", default="2", help="DataLoader worker counts, comma-separated (the baseline: 2)")
    p.add_argument("--readers", default="2", help="CropSampler reader counts beside 1, comma-separated")
    a = p.parse_args()
    worker_counts = [int(w) for w in a.workers.split(",")]
    reader_counts = [int(r) for r in a.readers.split(",") if r]
    batches = 3 if a.quick else a.batches
    rounds = 1 if a.quick else a.rounds
    sat, nwp = os.path.join(a.data, "sat.zarr"), os.path.join(a.data, "nwp.zarr")
    sat_shape = zuring.open_array(sat).shape
    sample_bytes = int(np.prod(SAT_CROP)) * 2 + int(np.prod(NWP_CROP)) * 4
    cold_ok = drop_caches()
    print(f"# bench_sampler: best of {rounds} rounds of {batches} batches of {BATCH} joint crops sat {SAT_CROP} + nwp {NWP_CROP}, {os.cpu_count()} cpus, DataLoader workers {a.workers}, cold {'by drop_caches' if cold_ok else 'unavailable'}")
    results = []
    for cache in (["warm", "cold"] if cold_ok else ["warm"]):
        seed = 11 if cache == "warm" else 12
        wins = windows(2 * batches * BATCH, seed, sat_shape)
        loaders = {
            (p, w): Loader(sat, nwp, wins, path, w)
            for w in worker_counts
            for p, path in (("default", "zarr.core.codec_pipeline.BatchedCodecPipeline"), ("zarrs", "zarrs.ZarrsCodecPipeline"))
        }
        _, sampler_wins = run_sampler(sat, nwp, batches, seed)
        methods = {
            "zuring CropSampler": lambda: run_sampler(sat, nwp, batches, seed),
            **{
                f"zuring CropSampler, readers={r}" + (f", prefetch={r}" if r > 2 else ""): lambda r=r: run_sampler(sat, nwp, batches, seed, readers=r)
                for r in reader_counts
            },
            "zuring read_crops (same windows)": lambda: run_direct(sat, nwp, sampler_wins),
        }
        for w in worker_counts:
            methods[f"DataLoader({w} workers) + zarr default"] = lambda w=w: loaders["default", w].epoch(1)
            methods[f"DataLoader({w} workers) + zarrs-python"] = lambda w=w: loaders["zarrs", w].epoch(1)
        if importlib.util.find_spec("xbatcher") is not None:
            methods["xbatcher BatchGenerator (sat only)"] = lambda: run_xbatcher(sat, batches * BATCH)
        else:
            print("# xbatcher BatchGenerator: skipped (xbatcher is not installed)")
        # Every method serves batches x BATCH samples (checked after each run); best of `rounds`
        # rounds in which the methods take turns.
        n = batches * BATCH

        def serves_n(fn):
            def run():
                got = fn()
                got = got[0] if isinstance(got, tuple) else got
                if got != n:
                    raise SystemExit(f"a method served {got} samples, not {n}")

            return run

        best = interleaved({m: serves_n(fn) for m, fn in methods.items()}, rounds, cache == "cold", [sat, nwp])
        for name, secs in best.items():
            per_sample = sample_bytes if "sat only" not in name else int(np.prod(SAT_CROP)) * 2
            r = dict(cache=cache, method=name, samples=n, seconds=secs, samples_s=n / secs, mib_s=n * per_sample / secs / 2**20)
            results.append(r)
            print(json.dumps(r), flush=True)
    main_peak = status_mib("VmHWM")
    extra = {r: sampler_peak_extra_mib(sat, nwp, batches, r) for r in [1, *reader_counts]}
    more = {f"sampler_readers_{r}_peak_extra_mib": extra[r] for r in reader_counts}
    print(json.dumps({"peak_rss_main_mib": main_peak, "peak_rss_largest_dataloader_worker_mib": Loader.worker_peak_mib, "sampler_peak_extra_mib": extra[1], **more, "batch_mib": BATCH * sample_bytes / 2**20}))
    print("\n| cache | method | samples/s | MiB/s | x best baseline |\n|---|---|---:|---:|---:|")
    for r in results:
        base = max((x["samples_s"] for x in results if x["cache"] == r["cache"] and not x["method"].startswith("zuring")), default=None)
        ratio = f"{r['samples_s'] / base:.2f}" if base else "-"
        print(f"| {r['cache']} | {r['method']} | {r['samples_s']:.0f} | {r['mib_s']:.0f} | {ratio} |")
    for cache in {r["cache"] for r in results}:
        s = next((r for r in results if r["cache"] == cache and r["method"] == "zuring CropSampler"), None)
        d = next((r for r in results if r["cache"] == cache and r["method"].startswith("zuring read_crops")), None)
        if s and d:
            print(f"sampler overhead over read_crops ({cache}): {100 * (d['samples_s'] / s['samples_s'] - 1):+.1f}%")


if __name__ == "__main__":
    main()
