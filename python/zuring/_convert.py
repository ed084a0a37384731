"""Conversions between numpy arrays of one element type in either byte order.

numpy casts between byte orders of generic-unit datetime64 / timedelta64 (``'>M8'`` to ``'<M8'``)
without swapping the bytes, so every value comes out wrong; a byte swap is exact for every
fixed-size type, so a change of byte order alone is done as one here.
"""

from __future__ import annotations

from typing import Any

import numpy as np


def _swapped(a: np.ndarray) -> np.ndarray:
    """``a``'s values in the other byte order (a new array)."""
    return a.byteswap().view(a.dtype.newbyteorder())


def _order_only(have: np.dtype, want: np.dtype) -> bool:
    return have != want and have.newbyteorder("=") == want.newbyteorder("=")


def as_dtype(value: Any, dtype: np.dtype) -> np.ndarray:
    """``value`` as a C-contiguous array of ``dtype`` (0-d stays 0-d). Python scalars and
    lists are converted as numpy (and zarr) convert what is assigned: straight to ``dtype``, so
    an integer out of its range raises OverflowError and NaN for an integer type ValueError,
    where a detour through numpy's own type would wrap or saturate without a word."""
    if not hasattr(value, "dtype"):
        # Python scalars and lists; a record given as a tuple (or a list of them) too: numpy
        # reads it field by field only when it knows the record type.
        return np.asarray(value, dtype=dtype, order="C")
    a = np.asarray(value)
    if _order_only(a.dtype, dtype):
        a = _swapped(a)
    return np.asarray(a, dtype=dtype, order="C")


def assign(out: np.ndarray, src: np.ndarray) -> None:
    """``out[...] = src``, exact when only the byte order differs."""
    if _order_only(src.dtype, out.dtype):
        src = _swapped(src)
    out[...] = src
