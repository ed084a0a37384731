"""Where the time of a zarr-python whole read goes: nwp.zarr read natively, through zarr + zuring
(the Rust call inside it timed on its own) and through zarr + zarrs-python, warm and cold, 4
runs each, the methods taking turns. Prints ms per read: (total, Rust call). Run from the
repository root with zarr, zarrs and zuring installed (as root for the cold runs). Output of the
16-core run: benches/results/16-cores/probe_nwp_pipeline.txt.
"""

import os
import time

import zarr

import zuring
import zuring.pipeline as zp

PATH = "target/bench-data/array/nwp.zarr"
RUST_MS: list[float] = []


class Timed:
    """A native array whose ``read_chunk_requests`` calls are timed."""

    def __init__(self, array):
        self.array = array

    def read_chunk_requests(self, *args, **kw):
        t = time.perf_counter()
        result = self.array.read_chunk_requests(*args, **kw)
        RUST_MS.append((time.perf_counter() - t) * 1000)
        return result

    def __getattr__(self, name):
        return getattr(self.array, name)


_init = zp._Coalescer.__init__
zp._Coalescer.__init__ = lambda self, array, store=None: _init(self, Timed(array), store)


def through(pipeline):
    with zarr.config.set({"codec_pipeline.path": pipeline}):
        return zarr.open_array(PATH, mode="r")[...]


METHODS = {
    "native": lambda: zuring.open_array(PATH)[...],
    "zarr+zuring": lambda: through("zuring.ZuringCodecPipeline"),
    "zarrs-python": lambda: through("zarrs.ZarrsCodecPipeline"),
}

for cache in ("warm", "cold"):
    runs = {m: [] for m in METHODS}
    for f in METHODS.values():
        f()
    for _ in range(4):
        for m, f in METHODS.items():
            if cache == "cold":
                os.system("sync; echo 3 > /proc/sys/vm/drop_caches")
            RUST_MS.clear()
            t = time.perf_counter()
            f()
            runs[m].append((round((time.perf_counter() - t) * 1000, 1), round(sum(RUST_MS), 1)))
    for m, v in runs.items():
        print(cache, m, "total/rust ms:", v, flush=True)
