"""Packed floats (zarr 3.4's ``scale_offset`` + ``cast_value``): float64 temperatures stored as
int16 hundredths with NaN as the least int16 (the CF packing convention), zstd, chunks of
1 x 256 x 256 over 8 x 1024 x 1024 (64 MiB decoded). Whole-array write and warm whole-array read
through zarr-python's default pipeline (which casts with cast-value-rs), its FusedCodecPipeline
and zuring's pipeline (strict: no fallback); the values each reads are checked against what was
written.

Needs zarr >= 3.4 and cast-value-rs (``.venv313``, set up by scripts/setup-venv313.sh).
Usage: .venv313/bin/python benches/python/bench_cast_value.py [--data DIR] [--repeat N]
"""

from __future__ import annotations

import os
import shutil
import time
import warnings

import numpy as np
import zarr
from zarr.codecs import ZstdCodec
from zarr.codecs.cast_value import CastValue
from zarr.codecs.scale_offset import ScaleOffset

import zuring  # noqa: F401  (registers the pipeline)
from _common import arguments, pipelines

PIPELINES = pipelines()
SHAPE, CHUNKS = (8, 1024, 1024), (1, 256, 256)


def main() -> None:
    args = arguments("cast_value")
    warnings.simplefilter("ignore")
    rng = np.random.default_rng(0)
    values = rng.normal(280.0, 15.0, SHAPE).round(2)
    values[:, 100:140, 200:260] = np.nan
    filters = [
        ScaleOffset(offset=280.0, scale=100.0),
        CastValue(data_type="int16", out_of_range="clamp", scalar_map={"encode": [("NaN", -32768)], "decode": [(-32768, "NaN")]}),
    ]
    mib = values.nbytes / 2**20
    print(f"# bench_cast_value: float64 {SHAPE} packed as int16 (scale_offset + cast_value, zstd), chunks {CHUNKS}, {mib:.0f} MiB decoded, {os.cpu_count()} cpus, best of {args.repeat}; zarr {zarr.__version__}")
    results = {}
    for name, pipeline in PIPELINES.items():
        path = os.path.join(args.data, pipeline.rsplit(".", 1)[-1])
        shutil.rmtree(path, ignore_errors=True)
        config = {"codec_pipeline.path": pipeline}
        if "zuring" in pipeline:
            config["codec_pipeline.strict"] = True
        with zarr.config.set(config):
            a = zarr.create_array(path, shape=SHAPE, dtype="f8", chunks=CHUNKS, fill_value=np.nan, filters=filters, compressors=[ZstdCodec(level=1)])
            write = read = float("inf")
            for _ in range(args.repeat):
                t = time.perf_counter()
                a[...] = values
                write = min(write, time.perf_counter() - t)
                t = time.perf_counter()
                out = a[...]
                read = min(read, time.perf_counter() - t)
            np.testing.assert_allclose(out, values, atol=0.0051)
        results[name] = (write, read)
    base_write, base_read = results["zarr-python (default)"]
    print(f"{'method':28s} {'write s':>8s} {'MiB/s':>7s} {'x default':>9s} {'read s':>8s} {'MiB/s':>7s} {'x default':>9s}")
    for name, (write, read) in results.items():
        print(f"{name:28s} {write:8.3f} {mib / write:7.0f} {base_write / write:9.2f} {read:8.3f} {mib / read:7.0f} {base_read / read:9.2f}")
    shutil.rmtree(args.data, ignore_errors=True)


if __name__ == "__main__":
    main()
