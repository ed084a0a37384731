"""Rectilinear chunk grids (zarr 3.4's experimental ``rectilinear`` grid): a year of daily
float32 fields, 365 x 256 x 256 (91 MiB), chunked by calendar month along time (31, 28, 31, ...
days) and 128 x 128 in space, zstd; once unsharded (a chunk per month and tile) and once in
shards of a month and the whole field holding daily 1 x 128 x 128 inner chunks. Whole-array
write, warm whole-array read and warm random crops (6 batches of 32 crops of 8 x 64 x 64, each
batch issued concurrently through zarr's async API) through zarr-python's default pipeline, its
FusedCodecPipeline and zuring's pipeline (strict: no fallback); every read is checked against
the values written.

Needs zarr >= 3.4 (``.venv313``, set up by scripts/setup-venv313.sh).
Usage: .venv313/bin/python benches/python/bench_rectilinear.py [--data DIR] [--repeat N]
"""

from __future__ import annotations

import asyncio
import os
import shutil
import time
import warnings

import numpy as np
import zarr
import zarr.api.asynchronous as za
from zarr.codecs import ZstdCodec

import zuring  # noqa: F401  (registers the pipeline)
from _common import arguments, pipelines

PIPELINES = pipelines()
MONTHS = [31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31]
SHAPE = (365, 256, 256)
LAYOUTS = {
    "unsharded": {"chunks": [MONTHS, [128, 128], [128, 128]]},
    "sharded": {"chunks": (1, 128, 128), "shards": [MONTHS, [256], [256]]},
}
CROP, BATCH, BATCHES = (8, 64, 64), 32, 6


async def crops(path: str, starts: np.ndarray) -> list[np.ndarray]:
    a = await za.open_array(store=path, mode="r")
    out = []
    for batch in starts.reshape(BATCHES, BATCH, 3):
        sels = [tuple(slice(s, s + c) for s, c in zip(start, CROP)) for start in batch]
        out += await asyncio.gather(*(a.getitem(sel) for sel in sels))
    return out


def main() -> None:
    args = arguments("rectilinear")
    warnings.simplefilter("ignore")
    rng = np.random.default_rng(0)
    # Smooth fields with noise (zstd finds matches and literals), not zeros.
    base = np.sin(np.linspace(0, 6, SHAPE[1] * SHAPE[2])).reshape(SHAPE[1:]) * 20 + 280
    values = (base + rng.normal(0, 2, SHAPE)).astype("float32").round(1)
    starts = np.stack([rng.integers(0, n - c + 1, BATCHES * BATCH) for n, c in zip(SHAPE, CROP)], axis=1)
    mib = values.nbytes / 2**20
    crop_mib = BATCHES * BATCH * np.prod(CROP) * 4 / 2**20
    print(
        f"# bench_rectilinear: float32 {SHAPE} ({mib:.0f} MiB), months along time x 128 x 128, zstd; "
        f"crops {BATCHES} x {BATCH} of {CROP} ({crop_mib:.0f} MiB); {os.cpu_count()} cpus, best of {args.repeat}, warm; zarr {zarr.__version__}"
    )
    print(f"{'layout':10s} {'method':26s} {'write MiB/s':>11s} {'read MiB/s':>10s} {'crops MiB/s':>11s}")
    for layout, kwargs in LAYOUTS.items():
        results = {}
        for name, pipeline in PIPELINES.items():
            path = os.path.join(args.data, layout, pipeline.rsplit(".", 1)[-1])
            shutil.rmtree(path, ignore_errors=True)
            config = {"codec_pipeline.path": pipeline, "array.rectilinear_chunks": True}
            if "zuring" in pipeline:
                config["codec_pipeline.strict"] = True
            with zarr.config.set(config):
                a = zarr.create_array(path, shape=SHAPE, dtype="f4", fill_value=0, compressors=[ZstdCodec(level=1)], **kwargs)
                write = read = crop = float("inf")
                for _ in range(args.repeat):
                    t = time.perf_counter()
                    a[...] = values
                    write = min(write, time.perf_counter() - t)
                    t = time.perf_counter()
                    out = a[...]
                    read = min(read, time.perf_counter() - t)
                    t = time.perf_counter()
                    got = asyncio.run(crops(path, starts))
                    crop = min(crop, time.perf_counter() - t)
                np.testing.assert_array_equal(out, values)
                for g, s in zip(got, starts):
                    np.testing.assert_array_equal(g, values[tuple(slice(x, x + c) for x, c in zip(s, CROP))])
            results[name] = (write, read, crop)
        base = results["zarr-python (default)"]
        for name, (write, read, crop) in results.items():
            ratios = " ".join(f"{b / v:.2f}x" for b, v in zip(base, (write, read, crop)))
            print(f"{layout:10s} {name:26s} {mib / write:11.0f} {mib / read:10.0f} {crop_mib / crop:11.0f}   (x default: {ratios})")
    shutil.rmtree(args.data, ignore_errors=True)


if __name__ == "__main__":
    main()
