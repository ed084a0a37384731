"""CropDataset through DataLoaders of 0-16 workers (warm; 48 batches of 32 joint sat + nwp crops an
epoch, best of 3 epochs after one untimed): what the loader's workers cost, and whether each
worker's full-size decode pool (one thread per core, in every worker) costs throughput against
spawned workers given ZURING_THREADS = cores / workers.

Usage: python benches/python/probe_dataloader_workers.py DATA_DIR [quick]
(DATA_DIR holds array_bench's sat.zarr and nwp.zarr; ``quick``: the first three cases only.)
"""

from __future__ import annotations

import multiprocessing as mp
import os
import sys
import time

from torch.utils.data import DataLoader

from zuring.torch import CropDataset


def run(data: str, workers: int, context: str | None, threads: int | None) -> None:
    if threads:
        os.environ["ZURING_THREADS"] = str(threads)
    else:
        os.environ.pop("ZURING_THREADS", None)
    ds = CropDataset(
        {"sat": f"{data}/sat.zarr", "nwp": f"{data}/nwp.zarr"}, {"time": 4, "y": 256, "x": 256}, 32,
        strides={"nwp": {"time": 2, "y": 2, "x": 2}}, samples_per_epoch=32 * 48, seed=1,
    )
    kwargs = dict(num_workers=workers, persistent_workers=True, multiprocessing_context=mp.get_context(context)) if workers else {}
    loader = DataLoader(ds, batch_size=None, **kwargs)
    best = 0.0
    for epoch in range(4):
        ds.set_epoch(epoch)
        start, n = time.perf_counter(), 0
        for batch in loader:
            n += batch["sat"].shape[0]
        if epoch:
            best = max(best, n / (time.perf_counter() - start))
    print(f"workers {workers:2d} {context or '-':5s} ZURING_THREADS={threads or 'default':7}: {best:.0f} samples/s", flush=True)


def main() -> None:
    data, quick = sys.argv[1], len(sys.argv) > 2
    cores = os.cpu_count() or 1
    cases = [(0, None, None)]
    for workers in (2, 4, 8, 16):
        cases += [(workers, "fork", None), (workers, "spawn", max(1, cores // workers))]
    cases.append((0, None, None))
    for workers, context, threads in cases[:3] if quick else cases:
        run(data, workers, context, threads)


if __name__ == "__main__":
    main()
