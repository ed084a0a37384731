"""``zuring.torch.CropDataset``: :class:`zuring.CropSampler` as a PyTorch ``IterableDataset``.

Yields whole batches (use ``DataLoader(dataset, batch_size=None)``). Work is split across
DataLoader workers and DDP ranks without duplicates: ranks take disjoint windows, and worker
``w`` of ``W`` reads batches ``w, w + W, ...`` of its rank's epoch, which the DataLoader hands
out in turn: a rank sees the batches, in the order, that ``num_workers=0`` gives, and ``len()``
is exact. The sampler is created inside each worker, so fork and spawn both work. The epoch, and a
state loaded to resume from, live in shared memory, so ``set_epoch`` and ``load_state_dict`` in
the main process reach workers that outlive an epoch (``persistent_workers=True``), which keep
their own copy of the dataset.

Resuming mid-epoch: ``load_state_dict({"epoch": e, "batches_served": n})``, ``n`` the batches
the loop took, and a plain ``DataLoader`` with any number of workers gives the rest of the
epoch in order; the loader's later iterations start their epochs at the first batch. The
dataset is stateful in torchdata's sense (``state_dict`` / ``load_state_dict``), so
``torchdata.stateful_dataloader.StatefulDataLoader`` saves each worker's place and resumes every
worker exactly; with ``num_workers=0`` the dataset's own ``state_dict()`` is the loop's place.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch.utils.data import IterableDataset, get_worker_info

from zuring import _mltypes
from zuring.sampler import CropSampler, _checked_state, _distributed_defaults, _whole

# The machine-learning types (ml_dtypes' numpy types, see zuring._mltypes) torch has too, with
# the same bits: such a batch becomes a tensor through an integer view of its size.
_TORCH_ML_TYPES = ("bfloat16", "float8_e5m2", "float8_e4m3fn", "float8_e4m3fnuz", "float8_e5m2fnuz", "float8_e8m0fnu")


def _torch_ml_type(dtype: np.dtype) -> torch.dtype | None:
    """torch's type for one of ml_dtypes' types, None when this torch has none."""
    return getattr(torch, dtype.name, None) if dtype.name in _TORCH_ML_TYPES else None


def _tensor(batch: np.ndarray) -> torch.Tensor:
    """``batch`` as a tensor sharing its memory (its type checked by CropDataset)."""
    if not _mltypes.is_ml(batch.dtype):
        return torch.from_numpy(batch)
    bits = torch.from_numpy(batch.view(np.int16 if batch.dtype.itemsize == 2 else np.uint8))
    return bits.view(_torch_ml_type(batch.dtype))


class _Board:
    """Places in ``CropDataset``'s shared int64 tensor. A state loaded in the main process is
    written there under a new generation number, and the first iteration after it resumes from
    it, in each of its processes once: the process of worker id ``i`` (the main process: 0)
    marks slot ``i`` with the generation it took, and the first to take it records its
    iteration's worker count, so a later iteration's workers start afresh (those below that
    count find their slot marked, the others are beyond it)."""

    EPOCH, GEN, TAKEN = 0, 1, 2
    # The loaded state: epoch, batches_served, start, worker, workers, rank, world_size (-1:
    # not given).
    STATE = slice(3, 10)
    # Worker i's slot: FIRST_SLOT + i.
    FIRST_SLOT = 16
    MAX_WORKERS = 1024
    SIZE = FIRST_SLOT + MAX_WORKERS


class CropDataset(IterableDataset):
    """Same arguments as :class:`zuring.CropSampler`; ``as_tensors`` (default True) yields
    ``torch.Tensor`` s sharing memory with the batch buffers (``pin_memory`` works on them).
    ``windows=True`` yields ``(batch, windows)``: ``windows`` an int64 (B, len(dims)) array of
    each crop's start along the sampler's cropped dimensions (``CropSampler.dims``, in the
    finest array's units), a tensor with ``as_tensors``: a sample's place in time and space."""

    def __init__(self, arrays: Any, crop: Any, batch_size: int, *, as_tensors: bool = True, windows: bool = False, **kwargs: Any) -> None:
        super().__init__()
        self._args = (arrays, crop, batch_size)
        self._kwargs = kwargs
        self._as_tensors = as_tensors
        self._windows = windows
        # This process's iteration (for state_dict).
        self._sampler: CropSampler | None = None
        # A state loaded inside a DataLoader worker (torchdata loads each worker's there), for
        # that worker's next iteration: (state, (batches_served, start, worker, workers)).
        self._resume: tuple[dict, tuple[int, int, int, int]] | None = None
        # Shared with the workers (inherited on fork, passed as shared memory on spawn), so a
        # persistent worker's copy of the dataset sees what the main process sets: the epoch,
        # and a state loaded there (see _Board).
        self._board = torch.zeros(_Board.SIZE, dtype=torch.int64).share_memory_()
        # Build one sampler here to check the arguments early, and keep its length (the dataset
        # itself stays picklable for spawned workers).
        rank, world = self._rank_world()
        probe = CropSampler(*self._paths(), **{**kwargs, "rank": rank, "world_size": world})
        try:
            self._len: int | None = len(probe)
        except TypeError:
            self._len = None
        if as_tensors:
            for name, dtype in zip(probe._names, probe._dtypes):
                if _mltypes.is_ml(dtype) and _torch_ml_type(dtype) is None:
                    raise TypeError(f"array {name!r} is {dtype}, which torch has no type for: pass as_tensors=False for numpy batches")

    def _paths(self) -> tuple:
        arrays, crop, batch_size = self._args
        from zuring.array import Array

        def plain(a):
            return a.path if isinstance(a, Array) else a

        arrays = {k: plain(v) for k, v in arrays.items()} if isinstance(arrays, dict) else plain(arrays)
        return arrays, crop, batch_size

    def _rank_world(self) -> tuple[int, int]:
        """This process's rank and world size: as given, else from torch.distributed."""
        rank = self._kwargs.get("rank")
        world = self._kwargs.get("world_size")
        if rank is None or world is None:
            r, w = _distributed_defaults()
            rank = r if rank is None else rank
            world = w if world is None else world
        return rank, world

    @property
    def epoch(self) -> int:
        return int(self._board[_Board.EPOCH])

    def __getstate__(self) -> dict:
        # Pickled in the main process for spawned workers, where torch.distributed is not
        # initialised: the rank and world size default from the process that pickles.
        state = self.__dict__.copy()
        rank, world = self._rank_world()
        state["_kwargs"] = {**self._kwargs, "rank": rank, "world_size": world}
        state["_sampler"] = None
        return state

    def state_dict(self) -> dict:
        """Where this process's iteration is. Without DataLoader workers (``workers`` 1):
        ``batches_served`` batches of the rank's epoch were served, whatever loader reads on.
        In worker ``worker`` of ``workers`` (torchdata's ``StatefulDataLoader`` keeps one such
        state per worker): that worker had served ``batches_served`` of its batches, ``start +
        worker``, ``start + worker + workers``, ... A state loaded and not yet iterated from is
        that state; before any iteration here, the epoch's start."""
        if self._resume is not None:
            return dict(self._resume[0])
        rank, world = self._rank_world()
        seed = self._kwargs.get("seed", 0)
        if get_worker_info() is None and (loaded := self._loaded()) is not None:
            state, (_, start, worker, workers) = loaded
            return {"rank": rank, "world_size": world, **state, "start": start, "worker": worker, "workers": workers}
        if self._sampler is not None:
            state = self._sampler.state_dict()
            start, worker, workers = self._sampler.share
            if workers == 1:
                # The rank's place, which loaders with any number of workers can resume from.
                return {**state, "batches_served": start + state["batches_served"], "start": 0, "worker": 0, "workers": 1}
            return {**state, "start": start, "worker": worker, "workers": workers}
        return {"epoch": self.epoch, "batches_served": 0, "seed": seed, "rank": rank, "world_size": world, "start": 0, "worker": 0, "workers": 1}

    def load_state_dict(self, state: dict) -> None:
        """The next iteration resumes from ``state``, one of ``state_dict()``'s, or one made by
        hand as ``{"epoch": e, "batches_served": n}``: the loop had taken ``n`` batches of the
        rank's epoch ``e`` (a plain ``DataLoader`` with any number of workers then gives the
        batches after them, in order: each worker resumes from it), and the dataset's epoch
        becomes ``e``. Loaded in the main process, the state reaches the loader's workers,
        persistent ones too, and only the next iteration's: later iterations start their epoch
        at its first batch. A state of one of several workers (torchdata's, which loads each
        into its worker) resumes that worker, with as many workers. ``len()`` stays the epoch's
        whole count (a resumed iteration gives the batches left)."""
        epoch, served, start, worker, workers = _checked_state(
            state, self._kwargs.get("seed", 0), "CropDataset", ("start", "worker", "workers")
        )
        if "workers" not in state:
            workers = 1
        elif not worker < workers:
            raise ValueError(f"CropDataset: the state's worker {worker} is not one of its {workers} workers")
        rank, world = (_whole(state[k], k, "CropDataset") if k in state else -1 for k in ("rank", "world_size"))
        place = (served, start, worker, workers)
        if get_worker_info() is not None:
            self._resume = (dict(state), place)
            return
        self._resume = None
        board = self._board
        board[_Board.STATE] = torch.tensor([epoch, *place, rank, world], dtype=torch.int64)
        board[_Board.TAKEN] = 0
        board[_Board.EPOCH] = epoch
        # Last: a worker that sees the new generation sees the state with it.
        board[_Board.GEN] += 1

    def _loaded(self) -> tuple[dict, tuple[int, int, int, int]] | None:
        """The state the main process loaded, while no iteration has taken it."""
        board = self._board
        if board[_Board.GEN] == 0 or board[_Board.TAKEN] != 0:
            return None
        return self._board_state()

    def _board_state(self) -> tuple[dict, tuple[int, int, int, int]]:
        """The state last loaded in the main process, and its place, as load_state_dict has them."""
        epoch, served, start, worker, workers, rank, world = self._board[_Board.STATE].tolist()
        state = {"epoch": epoch, "batches_served": served, "seed": self._kwargs.get("seed", 0)}
        state.update({k: v for k, v in (("rank", rank), ("world_size", world)) if v >= 0})
        return state, (served, start, worker, workers)

    def _take_loaded(self, worker: int, workers: int) -> tuple[dict, tuple[int, int, int, int]] | None:
        """The state the main process loaded, for worker ``worker`` of ``workers`` (0 of 1: the
        main process) when this iteration is the first since it was loaded, else None."""
        board = self._board
        generation = int(board[_Board.GEN])
        if generation == 0:
            return None
        if worker >= _Board.MAX_WORKERS:
            raise ValueError(f"CropDataset: a state loaded in the main process resumes at most {_Board.MAX_WORKERS} DataLoader workers, this is worker {worker}")
        slot = _Board.FIRST_SLOT + worker
        taken = int(board[_Board.TAKEN])
        if int(board[slot]) == generation or (taken and worker >= taken):
            # Taken by this worker in an earlier iteration, or by an iteration of fewer workers.
            return None
        board[slot] = generation
        if not taken:
            board[_Board.TAKEN] = workers
        return self._board_state()

    def set_epoch(self, epoch: int) -> None:
        """Windows of ``epoch`` from the next iteration on (in every worker, persistent or not;
        a state loaded and not yet iterated from is resumed first, in its own epoch)."""
        self._board[_Board.EPOCH] = _whole(epoch, "epoch", "set_epoch")

    def __len__(self) -> int:
        if self._len is None:
            raise TypeError("the epoch is endless (mode='random' without samples_per_epoch)")
        return self._len

    def __iter__(self):
        rank, world = self._rank_world()
        sampler = CropSampler(*self._paths(), **{**self._kwargs, "rank": rank, "world_size": world})
        info = get_worker_info()
        share = (0, 1) if info is None else (info.id, info.num_workers)
        resume, self._resume = self._resume, None
        if resume is None:
            resume = self._take_loaded(*share)
        if resume is None:
            sampler.split_batches(*share)
            sampler.set_epoch(self.epoch)
        else:
            state, (served, start, worker, workers) = resume
            saved = (worker, workers)
            saved_rank = (state.get("rank", rank), state.get("world_size", world))
            if saved_rank != (rank, world):
                raise ValueError(f"CropDataset: the state loaded is rank {saved_rank[0]}'s of {saved_rank[1]}, this is rank {rank} of {world}")
            if saved[1] == 1:
                # The rank's place: this process reads its share of the batches after it.
                start, served = start + served, 0
            elif saved != share:
                raise ValueError(
                    f"CropDataset: the state loaded is worker {saved[0]}'s of {saved[1]}, this is worker "
                    f"{share[0]} of {share[1]}: resume with as many DataLoader workers as were saved"
                )
            sampler.split_batches(*share, start=start)
            sampler.load_state_dict({**state, "batches_served": served})
        # Set up now, not at the first batch: torchdata asks for the state in between.
        self._sampler = sampler
        return self._batches(sampler)

    def _batches(self, sampler: CropSampler):
        for batch, windows in sampler.with_windows():
            if self._as_tensors:
                batch = {k: _tensor(v) for k, v in batch.items()} if isinstance(batch, dict) else _tensor(batch)
            if not self._windows:
                yield batch
                continue
            yield batch, torch.from_numpy(windows) if self._as_tensors else windows
