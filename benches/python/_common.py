"""Helpers shared by the Python benchmarks: page-cache control, and the command line and
pipelines of the zarr 3.4 codec benchmarks."""

from __future__ import annotations

import argparse
import os


def drop_caches() -> bool:
    """Flush and drop the page cache (root only); whether it worked. (``os.sync``, not a ``sync``
    process: a child forked from a large benchmark process would count as large in
    ``RUSAGE_CHILDREN``, where bench_sampler looks for its DataLoader workers' peak memory.)"""
    try:
        os.sync()
        with open("/proc/sys/vm/drop_caches", "w") as f:
            f.write("3")
        return True
    except OSError:
        return False


def warm(path: str) -> None:
    """Read every file under `path` once, so that it sits in the page cache."""
    for root, _, files in os.walk(path):
        for name in files:
            with open(os.path.join(root, name), "rb") as f:
                while f.read(1 << 20):
                    pass


def pipelines() -> dict[str, str]:
    """zarr-python's pipelines by name (its FusedCodecPipeline from zarr 3.4 on), then zuring's."""
    import zarr.core.codec_pipeline

    out = {"zarr-python (default)": "zarr.core.codec_pipeline.BatchedCodecPipeline"}
    if hasattr(zarr.core.codec_pipeline, "FusedCodecPipeline"):
        out["zarr-python Fused (3.4)"] = "zarr.core.codec_pipeline.FusedCodecPipeline"
    out["zarr-python + zuring"] = "zuring.ZuringCodecPipeline"
    return out


def arguments(name: str) -> argparse.Namespace:
    """``--data DIR`` (default ``target/bench-data/<name>``) and ``--repeat N`` (best of N)."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--data", default=f"target/bench-data/{name}")
    parser.add_argument("--repeat", type=int, default=3)
    return parser.parse_args()
