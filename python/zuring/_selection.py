"""Turn numpy-style keys into the descriptors the engine reads: a region (slices with positive
steps), an orthogonal selection (one index array per dimension), or points."""

from __future__ import annotations

import numbers
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Region:
    starts: list[int]
    stops: list[int]
    steps: list[int]

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(max(0, -(-(b - a) // s)) for a, b, s in zip(self.starts, self.stops, self.steps))


@dataclass(frozen=True)
class Orthogonal:
    lists: list[np.ndarray]

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(len(x) for x in self.lists)


def is_int(k: object) -> bool:
    """Whether ``k`` is an integer index (numpy's included; booleans are not)."""
    return isinstance(k, numbers.Integral) and not isinstance(k, (bool, np.bool_))


def expand(key: object, ndim: int) -> tuple:
    if not isinstance(key, tuple):
        key = (key,)
    n_ellipsis = sum(k is Ellipsis for k in key)
    if n_ellipsis > 1:
        raise IndexError("an index can only have a single ellipsis ('...')")
    if any(k is None for k in key):
        raise IndexError("newaxis (None) is not supported; reshape the result instead")
    if n_ellipsis:
        i = next(j for j, k in enumerate(key) if k is Ellipsis)
        fill = ndim - (len(key) - 1)
        if fill < 0:
            raise IndexError(f"too many indices: array is {ndim}-dimensional")
        key = key[:i] + (slice(None),) * fill + key[i + 1 :]
    if len(key) > ndim:
        raise IndexError(f"too many indices: array is {ndim}-dimensional, but {len(key)} were indexed")
    return key + (slice(None),) * (ndim - len(key))


def _index_array(k: object, n: int, dim: int) -> np.ndarray:
    arr = np.asarray(k)
    if arr.dtype == bool:
        if arr.shape != (n,):
            raise IndexError(f"boolean index for dimension {dim} has shape {arr.shape}, expected ({n},)")
        return np.flatnonzero(arr).astype(np.uint64)
    if arr.dtype.kind not in "iu":
        raise IndexError(f"index arrays must be integers or booleans, got {arr.dtype} for dimension {dim}")
    if arr.ndim != 1:
        raise IndexError(f"orthogonal index for dimension {dim} must be 1-d, got shape {arr.shape}")
    arr = arr.astype(np.int64)
    arr = np.where(arr < 0, arr + n, arr)
    bad = (arr < 0) | (arr >= n)
    if bad.any():
        raise IndexError(f"index {int(np.asarray(k).ravel()[np.argmax(bad)])} is out of bounds for dimension {dim} of size {n}")
    return arr.astype(np.uint64)


def kept(shape: tuple[int, ...], drop: list[int]) -> tuple[int, ...]:
    """``shape`` without the dimensions ``drop`` (those indexed by an integer)."""
    return tuple(n for d, n in enumerate(shape) if d not in drop)


def parse(key: object, shape: tuple[int, ...], *, orthogonal: bool = True) -> tuple[Region | Orthogonal, list[int]]:
    """Parse ``key``; returns the selection and the dimensions indexed by an integer (dropped)."""
    ndim = len(shape)
    key = expand(key, ndim)
    drop: list[int] = []
    parts: list[tuple[int, int, int] | np.ndarray] = []
    for dim, (k, n) in enumerate(zip(key, shape)):
        if is_int(k):
            i = int(k)
            if i < 0:
                i += n
            if not 0 <= i < n:
                raise IndexError(f"index {int(k)} is out of bounds for dimension {dim} of size {n}")
            parts.append((i, i + 1, 1))
            drop.append(dim)
        elif isinstance(k, slice):
            start, stop, step = k.indices(n)
            if step > 0:
                parts.append((start, max(start, stop), step))
            else:
                parts.append(np.arange(start, stop, step, dtype=np.int64).astype(np.uint64))
        elif orthogonal:
            parts.append(_index_array(k, n, dim))
        else:
            raise IndexError(f"unsupported index {k!r} for dimension {dim}")
    if all(isinstance(p, tuple) for p in parts):
        return Region([p[0] for p in parts], [p[1] for p in parts], [p[2] for p in parts]), drop
    lists = [
        p if isinstance(p, np.ndarray) else np.arange(p[0], p[1], p[2], dtype=np.uint64)
        for p in parts
    ]
    return Orthogonal(lists), drop


def selects_points(key: object, ndim: int) -> bool:
    """Whether ``key`` in ``a[key]`` selects points (numpy's vectorised indexing, which zarr's
    ``__getitem__`` and ``__setitem__`` use for "pure fancy" keys): one index per dimension,
    each an integer or a non-empty integer list or array, with two or more arrays or one of
    more than one dimension. (One 1-d array among integers selects the same elements read
    either way; keys with slices are orthogonal, as in zarr.)"""
    if not isinstance(key, tuple) or len(key) != ndim:
        return False
    arrays, multi = 0, False
    for k in key:
        if is_int(k):
            continue
        if not isinstance(k, (list, np.ndarray)) or len(k) == 0:
            return False
        a = np.asarray(k)
        if a.dtype.kind not in "iu":
            return False
        arrays += 1
        multi |= a.ndim > 1
    return arrays >= 2 or multi


def parse_points(key: object, shape: tuple[int, ...]) -> tuple[np.ndarray, tuple[int, ...]]:
    """Parse a vectorised (``vindex``) key: one broadcastable integer array per dimension.
    Returns the (N, ndim) coordinates and the output shape."""
    ndim = len(shape)
    if not isinstance(key, tuple):
        key = (key,)
    if len(key) == 1 and np.asarray(key[0]).dtype == bool and np.asarray(key[0]).shape == tuple(shape):
        key = tuple(np.nonzero(np.asarray(key[0])))
    if len(key) != ndim:
        raise IndexError(f"vindex needs one index array per dimension ({ndim}), got {len(key)}")
    arrays = np.broadcast_arrays(*[np.asarray(k) for k in key])
    out_shape = arrays[0].shape
    coords = np.empty((int(np.prod(out_shape, dtype=np.int64)), ndim), dtype=np.uint64)
    for dim, (a, n) in enumerate(zip(arrays, shape)):
        if a.dtype.kind not in "iu":
            raise IndexError(f"vindex arrays must be integers, got {a.dtype} for dimension {dim}")
        a = a.astype(np.int64).ravel()
        a = np.where(a < 0, a + n, a)
        if ((a < 0) | (a >= n)).any():
            raise IndexError(f"an index is out of bounds for dimension {dim} of size {n}")
        coords[:, dim] = a
    return coords, out_shape
