"""``zuring.CropSampler``: batches of random crops of one or more arrays for training.

Crops are read ahead on zuring's threads (``prefetch`` batches deep, ``readers`` batches at once),
delivered in order, and handed to Python as numpy arrays over recycled buffers (no copy). Window
positions are a pure function of (seed, epoch, rank, world size), so runs are reproducible and
resumable (``state_dict`` / ``load_state_dict``), and ranks never see the same window.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

import numpy as np

from zuring import _native
from zuring.array import Array, open_array


def _distributed_defaults() -> tuple[int, int]:
    try:
        import torch.distributed as dist

        if dist.is_available() and dist.is_initialized():
            return dist.get_rank(), dist.get_world_size()
    except ImportError:
        pass
    return 0, 1


def _as_array(a: Any) -> Array:
    return a if isinstance(a, Array) else open_array(a, mode="r")


def _whole(value: Any, key: str, who: str) -> int:
    """``value`` as a whole number >= 0, else a ValueError naming ``key``."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0:
        raise ValueError(f"{who}: {key} must be a whole number >= 0, got {value!r}")
    return int(value)


def _checked_state(state: Mapping[str, Any], seed: int, who: str, extra: tuple[str, ...] = ()) -> list[int]:
    """A state dict's ``epoch``, ``batches_served`` and ``extra`` numbers (0 where an extra one
    is absent), checked: present, whole, not negative, and for ``seed``."""
    missing = sorted({"epoch", "batches_served"} - set(state))
    if missing:
        raise ValueError(f"{who}: the state has no {missing}")
    if state.get("seed", seed) != seed:
        raise ValueError(f"{who}: the state is for seed {state['seed']}, this one has seed {seed}")
    return [_whole(state.get(key, 0), key, who) for key in ("epoch", "batches_served", *extra)]


class CropSampler:
    """Iterate over batches of joint random crops.

    Parameters
    ----------
    arrays
        One array (path or :class:`zuring.Array`), or a dict name -> array. Arrays share named
        dimensions (``dimension_names`` in their metadata, or ``dims``).
    crop
        Crop size per dimension: a tuple (one per dimension of the first array) or a dict
        dimension name -> size, in the units of the finest array (see ``strides``).
    batch_size
        Windows per batch.
    seed
        Seed of the window positions.
    mode
        ``"random"`` (uniform starts; ``samples_per_epoch`` per epoch or endless), ``"grid"``
        (every start on a grid of ``stride`` once per epoch, shuffled) or ``"ordered"`` (the same
        grid in order, walking ``ordered_dim`` slowest).
    stride
        Grid stride per dimension (dict or tuple); default: the crop size (non-overlapping tiles).
    region
        Restrict windows to ``start..stop`` per dimension, e.g. a train/validation split in time.
    strides
        Per array name, per dimension: how many units of the finest array one step of this array
        spans (hourly NWP against 15-minute satellite: ``{"nwp": {"time": 4}}``).
    full_dims
        Per array name, dimensions taken whole (e.g. ``{"nwp": ["channel"]}``).
    dims
        Per array name, dimension names when the metadata has none.
    rank, world_size
        This process's share (default: from ``torch.distributed`` when initialised, else 0 / 1).
    pad_ranks
        When an epoch's windows do not divide evenly between ranks, give every rank
        ``ceil(windows / world_size)`` by visiting the epoch's first windows again (as torch's
        ``DistributedSampler`` does by default), so that every window is seen, e.g. in a
        validation pass. Default: every rank gets ``windows // world_size`` and the remainder is
        left out (a shuffled grid leaves out different windows each epoch). Either way every
        rank runs the same number of steps.
    prefetch
        Batches read ahead, the ones being read included. Memory: about ``(prefetch + 2) x``
        batch bytes of outputs, plus the compressed bytes and decode scratch of the batches
        being read.
    readers
        Batches read at once, each by its own thread, between 1 and ``prefetch``; default 1
        (the arrays of a batch are read at once either way). A second reader overlaps one
        batch's disk waits with another's decoding, for a batch's compressed bytes and decode
        scratch more memory: within noise on a local disk here (``bench_sampler.py``), worth
        trying on a slower, higher-latency store.
    drop_last
        Skip a final short batch.
    """

    def __init__(
        self,
        arrays: Any,
        crop: Any,
        batch_size: int,
        *,
        seed: int = 0,
        mode: str = "random",
        samples_per_epoch: int | None = None,
        stride: Any = None,
        ordered_dim: str | None = None,
        region: Mapping[str, tuple[int, int]] | None = None,
        strides: Mapping[str, Mapping[str, int]] | None = None,
        full_dims: Mapping[str, list[str]] | None = None,
        dims: Mapping[str, list[str]] | None = None,
        rank: int | None = None,
        world_size: int | None = None,
        prefetch: int = 2,
        readers: int | None = None,
        drop_last: bool = True,
        pad_ranks: bool = False,
    ) -> None:
        self._single = not isinstance(arrays, Mapping)
        named = {"data": arrays} if self._single else dict(arrays)
        self._arrays = {name: _as_array(a) for name, a in named.items()}
        # With one array, per-array options may be given directly (not keyed by name).
        if self._single and full_dims is not None and not isinstance(full_dims, Mapping):
            full_dims = {"data": list(full_dims)}
        if self._single and dims is not None and not isinstance(dims, Mapping):
            dims = {"data": list(dims)}
        strides = dict(strides or {})
        full_dims = dict(full_dims or {})
        dims = dict(dims or {})
        specs = []
        for name, arr in self._arrays.items():
            names = list(dims.get(name) or arr.dimension_names or [])
            if not names:
                names = [f"dim_{i}" for i in range(arr.ndim)]
            if any(n is None for n in names):
                raise ValueError(f"array {name!r} has unnamed dimensions {names}; pass dims={{{name!r}: [...]}}")
            specs.append((name, arr._native, names, dict(strides.get(name, {})), list(full_dims.get(name, []))))
        first_dims = specs[0][2]
        if not isinstance(crop, Mapping):
            crop = tuple(crop)
            if len(crop) != len(first_dims):
                raise ValueError(f"crop {crop} needs one size per dimension of {specs[0][0]!r}: {first_dims}")
            crop = {d: int(c) for d, c in zip(first_dims, crop) if d not in full_dims.get(specs[0][0], [])}
        if stride is not None and not isinstance(stride, Mapping):
            stride = {d: int(s) for d, s in zip(first_dims, tuple(stride))}
        if rank is None or world_size is None:
            r, w = _distributed_defaults()
            rank = r if rank is None else rank
            world_size = w if world_size is None else world_size
        self.batch_size = batch_size
        self.seed = seed
        self.rank, self.world_size = rank, world_size
        self._native = _native.Sampler(
            specs, {k: int(v) for k, v in crop.items()}, batch_size, seed, mode,
            None if stride is None else {k: int(v) for k, v in stride.items()}, ordered_dim,
            samples_per_epoch, {k: (int(a), int(b)) for k, (a, b) in (region or {}).items()},
            rank, world_size, prefetch, drop_last, pad_ranks, None if readers is None else int(readers),
        )
        self._names = list(self._arrays)
        self._dtypes = [a.dtype for a in self._arrays.values()]
        self.epoch = 0
        # (start, w, W): read only batches start + w, start + w + W, ... of this rank's epoch.
        self._share = (0, 0, 1)
        self.last_windows: list[list[int]] = []

    @property
    def _served(self) -> int:
        # Kept in Rust, counted as each batch is handed over, so that an iteration another
        # thread starts at that moment reads on after it.
        return self._native.served

    @_served.setter
    def _served(self, served: int) -> None:
        self._native.served = served

    @property
    def dims(self) -> list[str]:
        """The cropped dimensions."""
        return list(self._native.dims)

    def crop_shapes(self) -> dict[str, tuple[int, ...]]:
        return {n: tuple(s) for n, s in zip(self._names, self._native.crop_shapes())}

    def __len__(self) -> int:
        n = self._native.batches()
        if n is None:
            raise TypeError("the epoch is endless (mode='random' without samples_per_epoch)")
        return n

    def split_batches(self, worker: int, workers: int, start: int = 0) -> None:
        """From the next iteration on, read only batches ``start + worker``, ``start + worker +
        workers``, ... of this rank's epoch, for one of ``workers`` processes sharing the rank
        (a loader's worker processes: ``zuring.torch.CropDataset`` does this in each DataLoader
        worker); together they read the rank's batches from ``start`` once each. ``start``
        holds for this epoch only: once it ends, the next iteration begins at its first batch.
        ``len()`` stays the rank's whole count; ``split_batches(0, 1)`` reads them all again."""
        worker, workers = int(worker), int(workers)
        if workers < 1 or not 0 <= worker < workers:
            raise ValueError(f"split_batches: worker {worker} of {workers}: needs 0 <= worker < workers")
        self._share = (_whole(start, "start", "split_batches"), worker, workers)

    @property
    def share(self) -> tuple[int, int, int]:
        """``(start, worker, workers)`` of :meth:`split_batches` (``(0, 0, 1)``: every batch)."""
        return self._share

    def set_epoch(self, epoch: int) -> None:
        """Start ``epoch`` at its first batch on the next iteration."""
        self.epoch, self._served = _whole(epoch, "epoch", "set_epoch"), 0

    def state_dict(self) -> dict:
        return {"epoch": self.epoch, "batches_served": self._served, "seed": self.seed, "rank": self.rank, "world_size": self.world_size}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        epoch, served = _checked_state(state, self.seed, "CropSampler")
        self.epoch, self._served = epoch, served

    def __iter__(self) -> Iterator[Any]:
        """Batches of this epoch, from the first not yet served. Iterating the sampler again
        (in any thread) ends an iterator still running: its next ``next()`` raises
        ``RuntimeError``, and the newest reads on from the batches served. ``last_windows``
        is the latest batch's crop starts (see :meth:`with_windows`)."""
        for batch, _ in self._iterate():
            yield batch

    def with_windows(self) -> Iterator[tuple[Any, np.ndarray]]:
        """As iterating the sampler, each batch with its crops' starts: an int64 array of shape
        (batch, len(dims)), along :attr:`dims` in the finest array's units (the batch's own, where
        ``last_windows`` is the latest batch's of whichever iteration ran last)."""
        dims = len(self.dims)
        for batch, windows in self._iterate():
            yield batch, np.asarray(windows, dtype=np.int64).reshape(-1, dims)

    def _iterate(self) -> Iterator[tuple[Any, list[list[int]]]]:
        start, worker, workers = self._share
        run = self._native.start(self.epoch, start + worker, workers)
        try:
            while True:
                # A failed batch is skipped (counted served): iterating again continues after it.
                item = self._native.next(run)
                if item is None:
                    break
                arrays, windows = item
                self.last_windows = windows
                out = {
                    name: np.frombuffer(buf, dtype=dtype).reshape(shape)
                    for name, dtype, (shape, buf) in zip(self._names, self._dtypes, arrays)
                }
                yield (out["data"] if self._single else out), windows
            # The epoch is over: the next iteration reads it from its first batch.
            self._share = (0, worker, workers)
        finally:
            # Only this iteration's prefetching (a newer one's goes on).
            self._native.stop(run)
