"""Train a toy model on random crops of a generated dataset with zuring's sampler.

    python python/examples/train_toy.py [--dir DIR] [--steps N] [--workers W]
                                        [--checkpoint PATH [--stop-at STEP]]

Generates a sharded uint16 "satellite" array (time x y x) and a float32 "nwp" array at a
quarter of its time resolution, then trains a small convolutional model to predict the NWP
field from the satellite crops, reading batches through ``zuring.torch.CropDataset``.

With ``--checkpoint``, the model, the optimiser and the data's place (the epoch and the batches
taken) are saved every 10 steps, and a run finding the file resumes from it: the batches after
those taken, with any number of DataLoader workers, so an interrupted run (``--stop-at``) and
its resumption train on the batches an uninterrupted run does.
"""

import argparse
import os
import tempfile

import numpy as np
import torch
from torch.utils.data import DataLoader

import zuring
from zuring.torch import CropDataset


def make_dataset(root: str) -> None:
    sharded = lambda dtype, shape, shard, inner: {  # noqa: E731
        "zarr_format": 3, "node_type": "array", "shape": shape, "data_type": dtype,
        "chunk_grid": {"name": "regular", "configuration": {"chunk_shape": shard}},
        "chunk_key_encoding": {"name": "default"}, "fill_value": 0, "dimension_names": ["time", "y", "x"],
        "codecs": [{"name": "sharding_indexed", "configuration": {
            "chunk_shape": inner,
            "codecs": [{"name": "bytes", "configuration": {"endian": "little"}}, {"name": "zstd", "configuration": {"level": 3, "checksum": False}}],
            "index_codecs": [{"name": "bytes", "configuration": {"endian": "little"}}, {"name": "crc32c"}]}}],
    }
    t, y, x = np.meshgrid(np.arange(64), np.arange(128), np.arange(128), indexing="ij")
    field = np.sin(x / 9 + t / 5) * np.cos(y / 13)
    sat = zuring.create_array(os.path.join(root, "sat.zarr"), sharded("uint16", [64, 128, 128], [16, 64, 64], [1, 32, 32]))
    sat[...] = (1000 + 500 * field).astype("uint16")
    nwp = zuring.create_array(os.path.join(root, "nwp.zarr"), sharded("float32", [16, 128, 128], [8, 64, 64], [1, 32, 32]))
    nwp[...] = field[::4].astype("float32")


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--dir", default=None)
    p.add_argument("--steps", type=int, default=50)
    p.add_argument("--workers", type=int, default=0)
    p.add_argument("--checkpoint", default=None)
    p.add_argument("--stop-at", type=int, default=None, help="stop after this many steps (as if interrupted)")
    a = p.parse_args()
    torch.manual_seed(0)
    root = a.dir or tempfile.mkdtemp(prefix="zuring-toy-")
    if not os.path.exists(os.path.join(root, "nwp.zarr")):
        make_dataset(root)
    data = CropDataset(
        {"sat": os.path.join(root, "sat.zarr"), "nwp": os.path.join(root, "nwp.zarr")},
        {"time": 4, "y": 32, "x": 32}, batch_size=16, seed=0,
        strides={"nwp": {"time": 4}}, samples_per_epoch=16 * a.steps,
    )
    model = torch.nn.Sequential(torch.nn.Conv2d(4, 16, 3, padding=1), torch.nn.ReLU(), torch.nn.Conv2d(16, 1, 3, padding=1))
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    start = 0
    if a.checkpoint and os.path.exists(a.checkpoint):
        saved = torch.load(a.checkpoint)
        model.load_state_dict(saved["model"])
        opt.load_state_dict(saved["opt"])
        data.load_state_dict(saved["data"])  # the batches after those taken
        start = saved["data"]["batches_served"]
        print(f"resumed at step {start}")
    loader = DataLoader(data, batch_size=None, num_workers=a.workers)
    first = last = None
    for step, batch in enumerate(loader, start):
        x = (batch["sat"].float() - 1000) / 500   # (16, 4, 32, 32): four 15-minute frames
        y = batch["nwp"][:, 0:1]                   # (16, 1, 32, 32): the hour they fall in
        loss = torch.nn.functional.mse_loss(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        first = loss.item() if first is None else first
        last = loss.item()
        if step % 10 == 0:
            print(f"step {step:3d}  loss {loss.item():.4f}")
        if a.checkpoint and (step + 1) % 10 == 0:
            place = {"epoch": 0, "batches_served": step + 1}
            torch.save({"model": model.state_dict(), "opt": opt.state_dict(), "data": place}, a.checkpoint)
        if a.stop_at is not None and step + 1 == a.stop_at:
            print(f"stopped after step {step}")
            return
    print(f"loss {first:.4f} -> {last:.4f} over {step + 1} steps")
    print(f"final loss {last!r}")


if __name__ == "__main__":
    main()
