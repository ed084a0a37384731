"""Machine-learning element types as numpy types: bfloat16, the 8-, 6- and 4-bit floats and the
2- and 4-bit integers, which numpy lacks and `ml_dtypes <https://pypi.org/project/ml-dtypes/>`_
(the package JAX and tensorstore use) adds.

zarrs knows the types zarr-extensions registers (``ZARRS_TYPES``) with their fill values and
byte orders: Rust reads and writes them as elements of one or two bytes, laid out as ml_dtypes
lays them out, so Python only names the numpy type. tensorstore also writes ``float8_e4m3fn``
(the FP8 format of most accelerators), which zarrs does not know: Rust reads it as raw bits
(``RAW_TYPES``, see :mod:`zuring._rawtypes`) with its fill value's byte from here. Without
ml_dtypes installed these arrays read as raw elements (numpy ``V1`` / ``V2``).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

ZARRS_TYPES = frozenset({
    "bfloat16",
    "float8_e3m4", "float8_e4m3", "float8_e4m3b11fnuz", "float8_e4m3fnuz",
    "float8_e5m2", "float8_e5m2fnuz", "float8_e8m0fnu",
    "float6_e2m3fn", "float6_e3m2fn", "float4_e2m1fn",
    "int2", "int4", "uint2", "uint4",
})
RAW_TYPES = frozenset({"float8_e4m3fn"})
_ALL_TYPES = ZARRS_TYPES | RAW_TYPES

# Signed sub-byte integers: ml_dtypes keeps a value's low bits only (-1 as 0x0f), zarrs the
# value sign-extended (0xff). zarr-extensions ignores the upper bits on reading, so both read
# either; zuring writes zarrs' form, which matches the fill value zarrs gives (so all-fill
# chunks are recognised) and which zarrs reads back.
_SIGN_EXTENDED = frozenset({"int2", "int4"})


def dtype(name: Any, names: frozenset = _ALL_TYPES) -> np.dtype | None:
    """ml_dtypes' numpy type for the Zarr data type ``name`` when it is one of ``names`` and
    ml_dtypes is installed; else None."""
    if not isinstance(name, str) or name not in names:
        return None
    try:
        import ml_dtypes
    except ImportError:
        return None
    return np.dtype(getattr(ml_dtypes, name))


def is_ml(dtype: np.dtype) -> bool:
    """Whether ``dtype`` is one of ml_dtypes' types named here."""
    # (numpy's own types never take these names.)
    return dtype.fields is None and dtype.name in _ALL_TYPES


def to_stored(data: np.ndarray) -> np.ndarray:
    """``data`` (of its array's ml_dtypes type) as the elements Rust stores: signed 2- and
    4-bit integers sign-extended into their byte; any other array as it is."""
    if data.dtype.name in _SIGN_EXTENDED and is_ml(data.dtype):
        return data.astype(np.int8)
    return data


def fill_bytes(fill: Any, dtype: np.dtype) -> bytes:
    """The stored byte(s) of a JSON fill value of an ml_dtypes type (Zarr's float encodings:
    a number, ``"NaN"``, ``"Infinity"``, ``"-Infinity"``, or the bits in hex)."""
    if fill is None:
        return bytes(dtype.itemsize)
    if isinstance(fill, str) and fill.startswith("0x"):
        bits = int(fill, 16)
        if bits >= 1 << (8 * dtype.itemsize):
            raise ValueError(f"{fill} has more bits than {dtype}")
        return bits.to_bytes(dtype.itemsize, "little")
    if isinstance(fill, str):
        value = {"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf}[fill]
    elif isinstance(fill, (int, float)) and not isinstance(fill, bool):
        value = fill
    else:
        raise TypeError(f"fill value {fill!r} is not a number")
    # Rounded to the nearest value of the type, as zarrs rounds the fill values of its types;
    # a value past the type's range (infinity, for types without one) is refused.
    out = np.asarray(value).astype(dtype)
    if math.isnan(float(out)) != math.isnan(value) or (math.isinf(value) and not math.isinf(float(out))):
        raise ValueError(f"fill value {fill!r} is out of {dtype}'s range")
    return out.tobytes()
