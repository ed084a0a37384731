"""Feeding a GPU: how many joint crops a second zuring's CropSampler delivers into GPU memory, alone
and under a training step, against the same loop over a PyTorch DataLoader of zarr-python +
zarrs-python workers. Needs CUDA (the device machine: not part of scripts/bench.sh).

Crops and arrays as bench_sampler.py (sat (4, 256, 256) uint16 + nwp (2, 128, 128) float32,
batches of 32, warm cache). Stages timed for the sampler, one epoch each after a warm-up:
- ``sampler``: batches out of the sampler (numpy, no copy);
- ``-> GPU``: each batch copied into GPU memory (pinned staging, asynchronous copies);
- ``-> GPU + step``: and a small convolutional model trained on it (forward, backward, Adam),
  the loop a training script runs.
Usage: python benches/python/bench_gpu_feed.py [--data DIR] [--batches N] [--workers N,...]
"""

from __future__ import annotations

import argparse
import json
import os
import time

import numpy as np
import torch

import zuring
from bench_sampler import BATCH, NWP_CROP, SAT_CROP, Loader, windows

STRIDES = {"nwp": {"time": 2, "y": 2, "x": 2}}


def model() -> torch.nn.Module:
    """A small convolutional network over the two inputs (time steps as channels)."""

    class Net(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.sat = torch.nn.Sequential(
                torch.nn.Conv2d(SAT_CROP[0], 32, 3, padding=1), torch.nn.ReLU(),
                torch.nn.Conv2d(32, 32, 3, stride=2, padding=1), torch.nn.ReLU())
            self.nwp = torch.nn.Sequential(torch.nn.Conv2d(NWP_CROP[0], 32, 3, padding=1), torch.nn.ReLU())
            self.head = torch.nn.Conv2d(64, 1, 1)

        def forward(self, sat: torch.Tensor, nwp: torch.Tensor) -> torch.Tensor:
            return self.head(torch.cat([self.sat(sat), self.nwp(nwp)], dim=1))

    return Net().cuda()


class Feed:
    """Batches into GPU memory: pinned host buffers, copies on a side stream."""

    def __init__(self) -> None:
        self.stream = torch.cuda.Stream()
        self.pinned = {k: torch.empty((BATCH, *s), dtype=d).pin_memory() for k, s, d in (("sat", SAT_CROP, torch.int16), ("nwp", NWP_CROP, torch.float32))}

    def __call__(self, sat: np.ndarray, nwp: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        ps, pn = self.pinned["sat"], self.pinned["nwp"]
        ps.numpy().view(np.uint16)[...] = sat
        pn.numpy()[...] = nwp
        with torch.cuda.stream(self.stream):
            gs = ps.cuda(non_blocking=True)
            gn = pn.cuda(non_blocking=True)
        torch.cuda.current_stream().wait_stream(self.stream)
        self.stream.synchronize()  # the pinned buffers are reused for the next batch
        return gs, gn


def epoch(batches, stage: str, net, opt, feed: Feed) -> int:
    n = 0
    for sat, nwp in batches:
        n += sat.shape[0]
        if stage == "sampler":
            continue
        gs, gn = feed(np.asarray(sat), np.asarray(nwp))
        if stage == "-> GPU + step":
            x = (gs.to(torch.int32) & 0xFFFF).to(torch.float32)  # the uint16 values
            loss = net(x / 4096.0, gn).square().mean()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
    torch.cuda.synchronize()
    return n


def sampler_batches(sat: str, nwp: str, n_batches: int, seed: int):
    s = zuring.CropSampler({"sat": sat, "nwp": nwp}, {"time": SAT_CROP[0], "y": SAT_CROP[1], "x": SAT_CROP[2]}, BATCH,
                           seed=seed, samples_per_epoch=n_batches * BATCH, strides=STRIDES, prefetch=2)
    for b in s:
        yield b["sat"], b["nwp"]


def loader_batches(loader: Loader):
    # The loader's timed epoch (its second half of windows), as (sat, nwp) batches.
    loader.sampler.indices = list(range(loader.half, 2 * loader.half))
    for a, b, _ in loader.loader:
        yield a.numpy(), b.numpy()


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--data", default="target/bench-data/array")
    p.add_argument("--batches", type=int, default=64)
    p.add_argument("--workers", default="16", help="DataLoader worker counts, comma-separated")
    a = p.parse_args()
    sat, nwp = os.path.join(a.data, "sat.zarr"), os.path.join(a.data, "nwp.zarr")
    print(f"# bench_gpu_feed: {a.batches} batches of {BATCH} joint crops, {os.cpu_count()} cpus, {torch.cuda.get_device_name()}, warm cache")
    net = model()
    opt = torch.optim.Adam(net.parameters(), 1e-3)
    feed = Feed()
    sample_bytes = int(np.prod(SAT_CROP)) * 2 + int(np.prod(NWP_CROP)) * 4
    rows = []

    def record(method: str, stage: str, n: int, secs: float) -> None:
        rows.append(dict(method=method, stage=stage, samples=n, seconds=secs, samples_s=n / secs, mib_s=n * sample_bytes / secs / 2**20))
        print(json.dumps(rows[-1]), flush=True)

    stages = ("sampler", "-> GPU", "-> GPU + step")
    for stage in stages:
        epoch(sampler_batches(sat, nwp, 8, 1), stage, net, opt, feed)  # warm-up: pools, cuDNN
        t = time.perf_counter()
        n = epoch(sampler_batches(sat, nwp, a.batches, 2), stage, net, opt, feed)
        record("zuring CropSampler", stage, n, time.perf_counter() - t)
    wins = windows(2 * a.batches * BATCH, 3, zuring.open_array(sat).shape)
    for w in [int(x) for x in a.workers.split(",")]:
        loader = Loader(sat, nwp, wins, "zarrs.ZarrsCodecPipeline", w)
        for stage in stages:
            t = time.perf_counter()
            n = epoch(loader_batches(loader), stage, net, opt, feed)
            record(f"DataLoader({w} workers) + zarrs-python", stage, n, time.perf_counter() - t)
    print("\n| method | stage | samples/s | MiB/s |\n|---|---|---:|---:|")
    for r in rows:
        print(f"| {r['method']} | {r['stage']} | {r['samples_s']:.0f} | {r['mib_s']:.0f} |")


if __name__ == "__main__":
    main()
