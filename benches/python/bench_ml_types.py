"""bfloat16 training data: a 32 x 1024 x 1024 bfloat16 array (64 MiB decoded; a smooth field plus
noise, as model inputs stored at half width), sharded 8 x 512 x 512 with 1 x 256 x 256 inner
chunks, zstd level 1, written by tensorstore. zarr-python (3.1 and 3.4) has no bfloat16 type, nor
therefore its pipelines or zarrs-python; tensorstore is the peer. Warm and cold: batches of 32
random 4 x 256 x 256 crops (tensorstore: the 32 reads issued together as futures; zuring:
``read_crops``, and ``CropSampler`` batches as a training loop takes them), whole-array reads,
and a whole-array write into a fresh directory. Every method's values are checked.

Usage: .venv/bin/python benches/python/bench_ml_types.py [--data DIR] [--repeat N]
"""

from __future__ import annotations

import os
import shutil
import time

import ml_dtypes
import numpy as np
import tensorstore as ts

import zuring
from _common import arguments, drop_caches, warm

SHAPE, SHARD, INNER, CROP, BATCH, BATCHES = (32, 1024, 1024), (8, 512, 512), (1, 256, 256), (4, 256, 256), 32, 6
BF16 = np.dtype(ml_dtypes.bfloat16)


def metadata() -> dict:
    codecs = [{"name": "bytes", "configuration": {"endian": "little"}}, {"name": "zstd", "configuration": {"level": 1, "checksum": False}}]
    return {
        "shape": list(SHAPE), "data_type": "bfloat16", "fill_value": 0.0, "dimension_names": ["time", "y", "x"],
        "chunk_grid": {"name": "regular", "configuration": {"chunk_shape": list(SHARD)}},
        "chunk_key_encoding": {"name": "default"},
        "codecs": [{"name": "sharding_indexed", "configuration": {"chunk_shape": list(INNER), "codecs": codecs,
                    "index_codecs": [{"name": "bytes", "configuration": {"endian": "little"}}, {"name": "crc32c"}]}}],
    }


def ts_open(path: str, create: bool = False):
    spec = {"driver": "zarr3", "kvstore": {"driver": "file", "path": path}}
    if create:
        spec["metadata"] = metadata()
        return ts.open(spec, create=True, delete_existing=True).result()
    return ts.open(spec).result()


def values() -> np.ndarray:
    rng = np.random.default_rng(0)
    y, x = np.meshgrid(np.linspace(0, 6, SHAPE[1]), np.linspace(0, 6, SHAPE[2]), indexing="ij")
    out = np.empty(SHAPE, dtype=BF16)
    for t in range(SHAPE[0]):
        field = np.sin(y + t / 5) * np.cos(x - t / 7) * 10 + rng.normal(0, 0.5, y.shape)
        out[t] = field.astype(BF16)
    return out


def timed(fn, cold: bool, path: str) -> float:
    """Seconds ``fn`` takes (cache dropped or ``path`` read first); the values it returns, a
    pair (read, expected), are checked after the clock stops."""
    if cold:
        drop_caches()
    else:
        warm(path)
    t = time.perf_counter()
    got, want = fn()
    secs = time.perf_counter() - t
    np.testing.assert_array_equal(got.view(np.uint16), want.view(np.uint16))
    return secs


def main() -> None:
    args = arguments("ml_types")
    shutil.rmtree(args.data, ignore_errors=True)
    os.makedirs(args.data)
    path = os.path.join(args.data, "bf16.zarr")
    data = values()
    ts_open(path, create=True).write(data).result()
    rng = np.random.default_rng(1)
    batches = [np.stack([rng.integers(0, n - c + 1, BATCH) for n, c in zip(SHAPE, CROP)], axis=1) for _ in range(BATCHES)]
    crop_mib = BATCHES * BATCH * np.prod(CROP) * 2 / 2**20
    whole_mib = data.nbytes / 2**20
    cold_ok = drop_caches()

    def window(start):
        return tuple(slice(int(s), int(s) + c) for s, c in zip(start, CROP))

    def crop_of(start):
        return data[window(start)]

    def ts_crops():
        arr = ts_open(path)
        for starts in batches:
            futures = [arr[window(st)].read() for st in starts]
            out = [f.result() for f in futures]
        return out[-1], crop_of(batches[-1][-1])

    def zuring_crops():
        arr = zuring.open_array(path)
        out = np.empty((BATCH, *CROP), dtype=BF16)
        for starts in batches:
            arr.read_crops(starts, CROP, out=out)
        return out[-1], crop_of(batches[-1][-1])

    def zuring_sampler():
        s = zuring.CropSampler(path, CROP, batch_size=BATCH, seed=1, samples_per_epoch=BATCHES * BATCH)
        for batch in s:
            pass
        return batch[-1], crop_of(s.last_windows[-1])

    def ts_whole():
        return np.asarray(ts_open(path).read().result()), data

    def zuring_whole():
        return zuring.open_array(path)[...], data

    target = os.path.join(args.data, "write")

    def fresh():
        shutil.rmtree(target, ignore_errors=True)
        os.sync()

    def ts_write():
        ts_open(target, create=True).write(data).result()

    def zuring_write():
        meta = {"zarr_format": 3, "node_type": "array", **metadata()}
        zuring.create_array(target, meta)[...] = data

    workloads = [
        ("crops", crop_mib, {"tensorstore": ts_crops, "zuring read_crops": zuring_crops, "zuring CropSampler": zuring_sampler}),
        ("whole read", whole_mib, {"tensorstore": ts_whole, "zuring": zuring_whole}),
    ]
    print(f"# bench_ml_types: bfloat16 {SHAPE} ({whole_mib:.0f} MiB), shards {SHARD}, inner chunks {INNER}, zstd 1; crops {CROP} x {BATCH} x {BATCHES} batches; {os.cpu_count()} cpus, best of {args.repeat}, methods interleaved; tensorstore {getattr(ts, '__version__', '0.1.86')}")
    print(f"{'workload':12s} {'cache':6s} {'method':20s} {'seconds':>8s} {'MiB/s':>7s} {'x tensorstore':>13s}")
    for workload, mib, fns in workloads:
        for cache in ["warm", "cold"] if cold_ok else ["warm"]:
            for fn in fns.values():
                fn()  # imports, pools, first opens
            best = {m: float("inf") for m in fns}
            for _ in range(args.repeat):
                for m, fn in fns.items():
                    best[m] = min(best[m], timed(fn, cache == "cold", path))
            for m, secs in best.items():
                print(f"{workload:12s} {cache:6s} {m:20s} {secs:8.3f} {mib / secs:7.0f} {best['tensorstore'] / secs:13.2f}")
    best = {"tensorstore": float("inf"), "zuring": float("inf")}
    for _ in range(args.repeat):
        for m, fn in (("tensorstore", ts_write), ("zuring", zuring_write)):
            fresh()
            t = time.perf_counter()
            fn()
            best[m] = min(best[m], time.perf_counter() - t)
    np.testing.assert_array_equal(np.asarray(ts_open(target).read().result()).view(np.uint16), data.view(np.uint16))
    for m, secs in best.items():
        print(f"{'whole write':12s} {'-':6s} {m:20s} {secs:8.3f} {whole_mib / secs:7.0f} {best['tensorstore'] / secs:13.2f}")
    shutil.rmtree(args.data, ignore_errors=True)


if __name__ == "__main__":
    main()
