"""The ``zarr.json`` of a new Zarr v3 array from zarr-python's ``create_array`` keywords: shape,
data type, chunks (and shards), compressors, fill value, dimension names, attributes, written
as zarr-python 3 writes them for the same keywords (its defaults included), so either reads
the other's arrays."""

from __future__ import annotations

import math
from typing import Any, Sequence

import numpy as np

from zuring._rawtypes import _V3_SIMPLE
from zuring._selection import is_int

# zarr-python's default compressor configurations, by the name given.
_COMPRESSORS = {
    "zstd": lambda itemsize: {"name": "zstd", "configuration": {"level": 0, "checksum": False}},
    "gzip": lambda itemsize: {"name": "gzip", "configuration": {"level": 5}},
    "blosc": lambda itemsize: {
        "name": "blosc",
        "configuration": {"typesize": itemsize, "cname": "zstd", "clevel": 5, "shuffle": "shuffle" if itemsize > 1 else "bitshuffle", "blocksize": 0},
    },
}


def _data_type(dtype: np.dtype) -> Any:
    """The v3 ``data_type`` of ``dtype`` (numpy's), or ValueError for a type this form of
    ``create_array`` does not make."""
    if dtype.kind in "UT" or dtype == np.dtype(object):
        return "string"
    if dtype.kind in "Mm":
        unit, count = np.datetime_data(dtype)
        name = "numpy.datetime64" if dtype.kind == "M" else "numpy.timedelta64"
        return {"name": name, "configuration": {"unit": unit, "scale_factor": count}}
    name = dtype.newbyteorder("=").name
    if name not in _V3_SIMPLE:
        raise ValueError(
            f"dtype {dtype}: create_array(path, shape=..., dtype=...) makes booleans, integers, floats, "
            "complex numbers, datetime64 / timedelta64 and strings; give the array's zarr.json as "
            "create_array(path, metadata) for other types"
        )
    return name


def _float(value: float) -> Any:
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "Infinity" if value > 0 else "-Infinity"
    return value


def _fill(dtype: np.dtype, fill_value: Any) -> Any:
    """``fill_value`` (None: zarr's default for the type) as the JSON the metadata stores."""
    if dtype.kind in "UT" or dtype == np.dtype(object):
        return "" if fill_value is None else str(fill_value)
    if dtype.kind in "Mm":
        if fill_value is None:
            return int(np.iinfo(np.int64).min)  # NaT, as zarr's default
        return int(np.asarray(fill_value).astype(dtype).view(np.int64))
    if fill_value is None:
        fill_value = 0
    value = np.asarray(fill_value)
    if dtype.kind == "b":
        return bool(value)
    if dtype.kind in "iu":
        if value.dtype.kind == "f" and not float(value).is_integer():
            raise ValueError(f"fill_value {fill_value!r} is not an integer, as {dtype} needs")
        exact = int(value)
        info = np.iinfo(dtype)
        if not info.min <= exact <= info.max:
            raise OverflowError(f"fill_value {fill_value!r} is out of range for {dtype}")
        return exact
    cast = value.astype(dtype)
    if dtype.kind == "c":
        return [_float(float(cast.real)), _float(float(cast.imag))]
    return _float(float(cast))


def _shape(name: str, value: Any, ndim: int | None) -> list[int]:
    dims = [value] if is_int(value) else list(value)
    if not all(is_int(d) and d >= 0 for d in dims) or (ndim is not None and len(dims) != ndim):
        raise ValueError(f"{name} must be {ndim if ndim is not None else 'some'} non-negative integers, got {value!r}")
    return [int(d) for d in dims]


def _compressors(compressors: Any, itemsize: int) -> list[dict]:
    if compressors is None:
        return []
    if compressors == "auto":
        compressors = "zstd"
    if isinstance(compressors, (str, dict)):
        compressors = [compressors]
    made = []
    for c in compressors:
        if isinstance(c, str):
            if c not in _COMPRESSORS:
                raise ValueError(f"compressor {c!r}: name one of {sorted(_COMPRESSORS)}, or give the codec's metadata as a dict")
            made.append(_COMPRESSORS[c](itemsize))
        elif isinstance(c, dict) and isinstance(c.get("name"), str):
            made.append(c)
        else:
            raise ValueError(f"compressor {c!r}: a name or a codec's metadata ({{'name': ..., 'configuration': {{...}}}})")
    return made


def array_metadata(
    shape: Any,
    dtype: Any,
    chunks: Any = None,
    shards: Any = None,
    compressors: Any = "auto",
    fill_value: Any = None,
    dimension_names: Sequence[str | None] | None = None,
    attributes: dict | None = None,
    chunk_key_separator: str = "/",
) -> dict:
    """The ``zarr.json`` content zarr-python writes for ``zarr.create_array`` with these
    keywords (its default compressor, zstd level 0, for ``"auto"``; no compression for None)."""
    dtype = np.dtype(str if dtype is str else dtype)
    dims = _shape("shape", shape, None)
    if chunks is None:
        raise ValueError("chunks is required (the chunk shape; inner chunks when shards is given)")
    chunk_shape = _shape("chunks", chunks, len(dims))
    if any(c == 0 for c in chunk_shape):
        raise ValueError(f"chunks must be positive, got {chunks!r}")
    data_type = _data_type(dtype)
    itemsize = 0 if data_type == "string" else dtype.itemsize
    serializer = (
        {"name": "vlen-utf8", "configuration": {}}
        if data_type == "string"
        else {"name": "bytes"} if itemsize == 1 else {"name": "bytes", "configuration": {"endian": "little"}}
    )
    codecs = [serializer, *_compressors(compressors, itemsize)]
    grid = chunk_shape
    if shards is not None:
        grid = _shape("shards", shards, len(dims))
        if any(s == 0 or s % c for s, c in zip(grid, chunk_shape)):
            raise ValueError(f"shards {list(grid)} must be positive multiples of chunks {chunk_shape}")
        codecs = [{
            "name": "sharding_indexed",
            "configuration": {
                "chunk_shape": chunk_shape,
                "codecs": codecs,
                "index_codecs": [{"name": "bytes", "configuration": {"endian": "little"}}, {"name": "crc32c"}],
                "index_location": "end",
            },
        }]
    if chunk_key_separator not in ("/", "."):
        raise ValueError(f"chunk_key_separator must be '/' or '.', got {chunk_key_separator!r}")
    metadata = {
        "shape": dims,
        "data_type": data_type,
        "chunk_grid": {"name": "regular", "configuration": {"chunk_shape": grid}},
        "chunk_key_encoding": {"name": "default", "configuration": {"separator": chunk_key_separator}},
        "fill_value": _fill(dtype, fill_value),
        "codecs": codecs,
        "attributes": dict(attributes or {}),
        "zarr_format": 3,
        "node_type": "array",
        "storage_transformers": [],
    }
    if dimension_names is not None:
        names = list(dimension_names)
        if len(names) != len(dims) or not all(n is None or isinstance(n, str) for n in names):
            raise ValueError(f"dimension_names must be one string or None per dimension, got {dimension_names!r}")
        metadata["dimension_names"] = names
    return metadata
