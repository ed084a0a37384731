"""Helpers shared by the Python benchmarks: page-cache control, interleaved best-of timing, and
the command line and pipelines of the zarr 3.4 codec benchmarks."""

from __future__ import annotations

import argparse
import os
import time


def drop_caches() -> bool:
    """Flush and drop the page cache (root only); whether it worked. (``os.sync``: no ``sync``
    process forked from a large benchmark process.)"""
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


def timed(fn, cold, path, prepare=None):
    """Seconds `fn` takes, the page cache dropped first (cold), or `path` (a path or a list of
    them) read into it (warm), or left as it is (None); `prepare` runs first, untimed."""
    if cold:
        drop_caches()
    elif cold is not None:
        for one in [path] if isinstance(path, str) else path:
            warm(one)
    if prepare is not None:
        prepare()
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def interleaved(fns, rounds, cold, path, prepare=None):
    """Best seconds of each method over `rounds` rounds in which the methods take turns (in a
    rotating order); warm runs are preceded by one untimed run of each (imports, pools)."""
    if cold is False:
        for fn in fns.values():
            fn()
    best = {m: float("inf") for m in fns}
    names = list(fns)
    for r in range(rounds):
        for m in names[r % len(names):] + names[: r % len(names)]:
            best[m] = min(best[m], timed(fns[m], cold, path, prepare))
    return best


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
