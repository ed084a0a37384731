"""Fixed-size element types zarrs has no type for: fixed-length bytes (``|S``,
``null_terminated_bytes``), raw bytes (``|V``, ``raw_bytes``) and structured records (v2 field
lists, zarr 3.1's ``structured``, zarr 3.4's ``struct``), and tensorstore's ``float8_e4m3fn``
(as ml_dtypes' type, see :mod:`zuring._mltypes`). Rust reads and writes them as raw bits
of their size (v3 ``r<bits>``, v2 ``|V<bytes>``), so Python only needs their numpy layout as
stored and their fill value's stored bytes.
"""

from __future__ import annotations

import base64
import json
import math
import struct
from typing import Any

import numpy as np

from zuring import _mltypes

# Zarr v3 names of the simple fixed-size types (their little-endian forms).
_V3_SIMPLE = {
    "bool": "?", "int8": "i1", "int16": "<i2", "int32": "<i4", "int64": "<i8",
    "uint8": "u1", "uint16": "<u2", "uint32": "<u4", "uint64": "<u8",
    "float16": "<f2", "float32": "<f4", "float64": "<f8", "complex64": "<c8", "complex128": "<c16",
}


def v3_dtype(t: Any) -> np.dtype:
    """A Zarr v3 data type as numpy lays it out little-endian; KeyError for one it cannot."""
    if isinstance(t, str):
        if t in _V3_SIMPLE:
            return np.dtype(_V3_SIMPLE[t])
        ml = _mltypes.dtype(t, _mltypes.RAW_TYPES)
        if ml is not None:
            return ml
        if t.startswith("r") and t[1:].isdigit() and int(t[1:]) % 8 == 0:
            return np.dtype(f"V{int(t[1:]) // 8}")
        raise KeyError(t)
    name, config = t["name"], t.get("configuration", {})
    if name == "null_terminated_bytes":
        return np.dtype(f"S{config['length_bytes']}")
    if name == "raw_bytes":
        return np.dtype(f"V{config['length_bytes']}")
    if name == "fixed_length_utf32":
        return np.dtype(f"<U{config['length_bytes'] // 4}")
    if name in ("numpy.datetime64", "numpy.timedelta64"):
        scale = int(config.get("scale_factor", 1))
        unit = f"{scale}{config['unit']}" if scale != 1 else config["unit"]
        return np.dtype(f"<{'M8' if name.endswith('datetime64') else 'm8'}[{unit}]")
    if name == "structured":  # zarr 3.1: [[name, type], ...]
        return np.dtype([(f, v3_dtype(ft)) for f, ft in config["fields"]])
    if name == "struct":  # zarr 3.4: [{"name": ..., "data_type": ...}, ...]
        return np.dtype([(f["name"], v3_dtype(f["data_type"])) for f in config["fields"]])
    raise KeyError(name)


def _v2_dtype(t: Any) -> np.dtype:
    """A Zarr v2 dtype (typestr, or a list of [name, type(, shape)] fields)."""
    if isinstance(t, list):
        return np.dtype([(f[0], _v2_dtype(f[1]), *([tuple(f[2])] if len(f) > 2 else [])) for f in t])
    # tensorstore's v2 "bfloat16" (little-endian) and 8-bit floats: ml_dtypes' names, which
    # numpy knows only once ml_dtypes is imported.
    ml = _mltypes.dtype(t)
    return np.dtype(t) if ml is None else ml


def _bytes_endian(codecs: list) -> str | None:
    """The ``endian`` of the array's ``bytes`` codec (inside a sharding codec or not)."""
    for codec in codecs:
        if codec.get("name") == "sharding_indexed":
            return _bytes_endian(codec.get("configuration", {}).get("codecs", []))
        if codec.get("name") == "bytes":
            return (codec.get("configuration") or {}).get("endian")
    return None


def raw_layout(dtype: np.dtype, doc: dict) -> np.dtype | None:
    """The numpy layout of a stored element of the array described by ``doc`` (``zarr.json`` or
    ``.zarray`` content, the ``bytes`` codec's ``endian`` as zarr evolved it) whose elements
    are ``dtype`` in memory, when its type is one Rust reads as raw bits; None for any other
    type. A v2 dtype spells out its byte order (every field's); a v3 ``bytes`` codec with an
    ``endian`` stores every field of a record in that order (zarr >= 3.4's ``struct``);
    without one (zarr 3.1's ``structured``) records are stored as they lie in memory."""
    if dtype.kind not in "SV" or dtype.hasobject or dtype.itemsize == 0:
        return None
    if doc.get("zarr_format") != 2 and dtype.fields is not None:
        endian = _bytes_endian(doc.get("codecs", []))
        if endian is not None:
            return dtype.newbyteorder("<" if endian == "little" else ">")
    return dtype


def stored_layout(doc: dict) -> np.dtype | None:
    """:func:`raw_layout` of the array described by ``doc`` alone (as read from its directory:
    v3 types are taken little-endian, zarr's layout in memory)."""
    try:
        dtype = _v2_dtype(doc["dtype"]) if doc.get("zarr_format") == 2 else v3_dtype(doc["data_type"])
    except (KeyError, IndexError, TypeError, ValueError, SyntaxError):
        # (numpy's parser of type strings raises SyntaxError for some, such as ",i2")
        return None
    return raw_layout(dtype, doc)


def _json_scalar(value: Any, dtype: np.dtype) -> Any:
    """A Zarr v3 JSON fill value of one field as numpy takes it."""
    if dtype.fields is not None:
        out = np.zeros((), dtype=dtype)
        for name in dtype.names:
            out[name] = _json_scalar(value[name], dtype.fields[name][0])
        return out
    if dtype.kind in "SV" and isinstance(value, str):
        return base64.standard_b64decode(value)
    if dtype.kind in "fc":
        if dtype.kind == "c" and isinstance(value, list):
            return complex(_json_scalar(value[0], np.dtype("f8")), _json_scalar(value[1], np.dtype("f8")))
        if isinstance(value, str) and value.startswith("0x"):
            # A float's bits in hex (float16/32/64 by the number of digits).
            bits = int(value, 16)
            code = {4: "e", 8: "f", 16: "d"}[len(value) - 2]
            return struct.unpack(f">{code}", bits.to_bytes(len(value[2:]) // 2, "big"))[0]
        if isinstance(value, str):
            return {"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf}[value]
    return value


def fill_bytes(doc: dict, stored: np.dtype) -> bytes:
    """The fill value of the array described by ``doc`` as stored bytes (zeros when it has
    none, as zarr reads it): base64 text (short byte strings padded with zeros) or, for a
    zarr 3.4 record, one JSON value per field."""
    fill = doc.get("fill_value")
    if fill is None:
        return bytes(stored.itemsize)
    if _mltypes.is_ml(stored):
        return _mltypes.fill_bytes(fill, stored)
    if isinstance(fill, str):
        raw = base64.standard_b64decode(fill)
        return raw.ljust(stored.itemsize, b"\0")[: stored.itemsize]
    if isinstance(fill, list) and stored.fields is None:
        return bytes(fill).ljust(stored.itemsize, b"\0")[: stored.itemsize]
    return np.asarray(_json_scalar(fill, stored), dtype=stored).tobytes()


def rust_metadata(doc: dict, stored: np.dtype, fill: bytes) -> str:
    """``doc`` for Rust: the data type as raw bits of ``stored``'s size, the fill value as its
    stored bytes, and ``bytes`` codecs without an ``endian`` (the layout is ``stored``'s)."""
    doc = json.loads(json.dumps(doc))
    if doc.get("zarr_format") == 2:
        doc["dtype"] = f"|V{stored.itemsize}"
        doc["fill_value"] = base64.standard_b64encode(fill).decode()
        return json.dumps(doc)
    doc["data_type"] = f"r{8 * stored.itemsize}"
    doc["fill_value"] = list(fill)

    def plain_bytes(codecs: list) -> None:
        for i, codec in enumerate(codecs):
            if codec.get("name") == "bytes":
                codecs[i] = {"name": "bytes"}
            elif codec.get("name") == "sharding_indexed":
                plain_bytes(codec["configuration"]["codecs"])

    plain_bytes(doc["codecs"])
    return json.dumps(doc)
