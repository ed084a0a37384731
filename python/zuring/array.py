"""The Python face of zuring's arrays."""

from __future__ import annotations

import contextlib
import json
import math
import os
import struct
from typing import Any, Iterator

import numpy as np

from zuring import _mltypes, _native, _rawtypes
from zuring._attrs import Attributes, plain
from zuring._convert import as_dtype
from zuring._create import array_metadata
from zuring._selection import Orthogonal, Region, expand, is_int, kept, parse, parse_points, selects_points

def _dtype(name: str, metadata: dict, element_size: int) -> np.dtype:
    """The numpy dtype (native byte order) of a Zarr data type."""
    if element_size == 0:
        return np.dtype(object)
    if metadata.get("zarr_format") == 2 and np.dtype(metadata["dtype"]).kind in "Mm":
        # v2 datetime64 / timedelta64: read by zarrs as int64 (`name`), the same bytes.
        return np.dtype(metadata["dtype"]).newbyteorder("=")
    ml = _mltypes.dtype(name)
    if ml is not None:
        return ml
    # zarrs' name of the type (ints, floats, r<bits>), else the v3 metadata's (datetimes).
    for t in (name, metadata.get("data_type")):
        try:
            return _rawtypes.v3_dtype(t).newbyteorder("=")
        except (KeyError, TypeError, ValueError):
            continue
    if metadata.get("zarr_format") == 2:
        return np.dtype(metadata["dtype"]).newbyteorder("=")
    return np.dtype(f"V{element_size}")


class Array:
    """A Zarr array (v3 or v2) in a local directory, read and written by zuring's engine."""

    def __init__(self, native: _native.Array, dtype: np.dtype | None = None, metadata: dict | None = None):
        # (dtype and metadata: given for the types Rust reads as raw bits, see `_open_raw`.)
        self._native = native
        self._metadata = json.loads(native.metadata_json) if metadata is None else metadata
        self.dtype = _dtype(native.data_type, self._metadata, native.element_size) if dtype is None else dtype
        self._read_only = False

    @property
    def read_only(self) -> bool:
        """Whether the array was opened with ``mode="r"``: writes, ``resize`` and attribute
        changes raise ``ValueError``."""
        return self._read_only

    def _check_writable(self) -> None:
        if self._read_only:
            raise ValueError(f"{self.path}: opened read-only (mode='r')")

    # -- description ---------------------------------------------------------------------------
    @property
    def path(self) -> str:
        return os.fspath(self._native.path)

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self._native.shape)

    @property
    def ndim(self) -> int:
        return len(self._native.shape)

    @property
    def size(self) -> int:
        return math.prod(self.shape)

    @property
    def chunks(self) -> tuple[int, ...]:
        """The read granularity: the inner chunk shape when sharded, else the chunk shape.
        Like zarr-python, undefined (``NotImplementedError``) for an unsharded array with a
        rectilinear chunk grid: see :attr:`read_chunk_sizes`."""
        if self._native.rectilinear and self._native.shards is None:
            raise NotImplementedError(
                "`chunks` is only defined for arrays with a regular chunk grid; this array's is "
                "rectilinear: use `read_chunk_sizes`"
            )
        return tuple(self._native.chunks)

    @property
    def shards(self) -> tuple[int, ...] | None:
        """The shard shape, None when not sharded. Like zarr-python, undefined
        (``NotImplementedError``) for a sharded array with a rectilinear chunk grid: see
        :attr:`write_chunk_sizes`."""
        shards = self._native.shards
        if shards is not None and self._native.rectilinear:
            raise NotImplementedError(
                "`shards` is only defined for arrays with a regular chunk grid; this array's is "
                "rectilinear: use `write_chunk_sizes`"
            )
        return None if shards is None else tuple(shards)

    @property
    def cdata_shape(self) -> tuple[int, ...]:
        """The number of chunks (inner chunks when sharded) along each dimension, as zarr's."""
        return tuple(len(d) for d in self._native.read_chunk_sizes)

    @property
    def nchunks(self) -> int:
        """The number of chunks (inner chunks when sharded) of the array, as zarr's."""
        return math.prod(self.cdata_shape)

    @property
    def nchunks_initialized(self) -> int:
        """The number of chunks stored, as zarr counts them: the stored files (chunks, or
        shards), a shard counted with all the inner chunks of its shape, however few of them
        it holds."""
        return self._native.chunks_stored()

    def nbytes_stored(self) -> int:
        """The bytes of every file in the array's directory, metadata included, as zarr's
        ``nbytes_stored()`` for a local store."""
        return sum(os.path.getsize(os.path.join(d, f)) for d, _, files in os.walk(self.path) for f in files)

    @property
    def read_chunk_sizes(self) -> tuple[tuple[int, ...], ...]:
        """Per dimension, the lengths of the chunks reads decode (inner chunks when sharded),
        the last cut at the array's end (zarr-python's ``read_chunk_sizes``, dask's
        ``chunks``)."""
        return tuple(tuple(d) for d in self._native.read_chunk_sizes)

    @property
    def write_chunk_sizes(self) -> tuple[tuple[int, ...], ...]:
        """Per dimension, the lengths of the stored chunks (shards when sharded), the last cut
        at the array's end."""
        return tuple(tuple(d) for d in self._native.write_chunk_sizes)

    @property
    def fill_value(self) -> Any:
        if self.dtype == object:
            return self._metadata.get("fill_value")
        return np.frombuffer(self._native.fill_value_bytes, dtype=self.dtype)[0]

    @property
    def dimension_names(self) -> tuple[str | None, ...] | None:
        names = self._metadata.get("dimension_names")
        return None if names is None else tuple(names)

    @property
    def attrs(self) -> Attributes:
        """The user attributes, as zarr's ``attrs``: changes are written to the array's metadata
        document at once (``zarr.json``, or ``.zattrs`` for v2), atomically."""
        return Attributes(self.path, self._metadata.get("zarr_format", 3), self._metadata.get("attributes") or {}, self._attributes_changed, self._read_only)

    def update_attributes(self, new_attributes: dict) -> "Array":
        """Merge ``new_attributes`` into the attributes (one write); returns the array, as zarr."""
        self.attrs.update(new_attributes)
        return self

    def _attributes_changed(self, values: dict) -> None:
        self._metadata["attributes"] = values

    @property
    def metadata(self) -> dict:
        return dict(self._metadata)

    @property
    def nbytes(self) -> int:
        """Bytes of the whole array decoded (element size x size; object arrays: pointers)."""
        return self.size * self.dtype.itemsize

    def __len__(self) -> int:
        return self.shape[0] if self.shape else 0

    def __array__(self, dtype: Any = None, copy: bool | None = None) -> np.ndarray:
        """numpy's array protocol: ``np.asarray(a)`` reads the whole array (always a new array,
        so ``copy=False`` cannot be honoured and raises, as numpy asks)."""
        if copy is False:
            raise ValueError("reading a zuring.Array always makes a new array (copy=False)")
        out = np.asarray(self[...])
        return out if dtype is None else as_dtype(out, np.dtype(dtype))

    def __reduce__(self):
        # Pickles by path (dask workers, spawned DataLoader workers reopen the array).
        return (open_array, (self.path, "r" if self._read_only else "r+"))

    def __repr__(self) -> str:
        if self._native.rectilinear:
            return f"<zuring.Array {self.path!r} shape={self.shape} dtype={self.dtype} rectilinear chunks={self.write_chunk_sizes}>"
        return f"<zuring.Array {self.path!r} shape={self.shape} dtype={self.dtype} chunks={self.chunks} shards={self.shards}>"

    # -- reads ---------------------------------------------------------------------------------
    def _empty(self, shape: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
        out = np.empty(shape, dtype=self.dtype)
        return out, out.reshape(-1).view(np.uint8)

    def _read(self, selection: Region | Orthogonal, drop: list[int], out: Any = None) -> Any:
        full = selection.shape
        if out is not None:
            out = _out_array(out, kept(full, drop))
        if self.dtype == object:
            # Strings, vlen bytes: planned and read in Rust, elements returned as objects.
            if isinstance(selection, Region):
                lists = [np.arange(a, b, s, dtype=np.uint64) for a, b, s in zip(selection.starts, selection.stops, selection.steps)]
            else:
                lists = [np.ascontiguousarray(x, dtype=np.uint64) for x in selection.lists]
            values = self._native.read_variable(lists)
            target = np.empty(len(values), dtype=object)
            target[:] = values
            target = target.reshape(full)
        else:
            target, raw = self._target(full, out)
            if isinstance(selection, Region):
                self._native.read_region_into(selection.starts, selection.stops, selection.steps, raw)
            else:
                self._native.read_orthogonal_into(selection.lists, raw)
        if out is not None:
            return _settle(out, target, self.dtype)
        if drop:
            target = target.reshape(kept(target.shape, drop))
        return target[()] if target.ndim == 0 else target

    def _target(self, shape: tuple[int, ...], out: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
        """The array a read of ``shape`` fills and its bytes: ``out`` itself (viewed with the
        dropped dimensions put back) when it is C-contiguous and of the array's type, else a
        new array (copied into ``out`` afterwards by `_settle`, if given)."""
        if out is not None and _fills_in_place(out, self.dtype):
            target = out.reshape(shape)
            return target, target.reshape(-1).view(np.uint8)
        return self._empty(shape)

    def _read_points(self, coords: np.ndarray, shape: tuple[int, ...], out: Any = None) -> np.ndarray:
        """Read the elements at ``coords`` ((N, ndim)) into an array of ``shape`` (N elements)."""
        if out is not None:
            out = _out_array(out, shape)
        if self.dtype == object:
            values = self._native.read_variable([np.ascontiguousarray(coords.reshape(-1), dtype=np.uint64)], points=True)
            target = np.empty(len(values), dtype=object)
            target[:] = values
        else:
            target, raw = self._target((coords.shape[0],), out)
            self._native.read_points_into(coords.reshape(-1), raw)
        if out is not None:
            return _settle(out, target, self.dtype)
        return target.reshape(shape)

    def __getitem__(self, key: Any) -> Any:
        """numpy basic indexing (ints, slices with any step, ellipsis), orthogonal indexing
        with integer or boolean arrays per dimension, and a boolean mask of the array's shape
        (the selected elements in C order, as numpy and zarr give them). Integer arrays alone,
        one per dimension (with integers), two or more of them or one of several dimensions,
        select points, as in numpy and zarr (``vindex``): ``a[[1, 2], [3, 4]]`` is two
        elements."""
        mask = self._whole_mask(key)
        if mask is not None:
            return self.get_mask_selection(mask)
        if selects_points(key, self.ndim):
            return self.vindex[key]
        selection, drop = parse(key, self.shape)
        return self._read(selection, drop)

    def _whole_mask(self, key: Any) -> np.ndarray | None:
        """``key`` if it is one boolean array with a dimension per dimension of the array (a
        mask selection, as numpy and zarr read ``a[mask]``; 1-d, the orthogonal reading is the
        same), else None."""
        k = key[0] if isinstance(key, tuple) and len(key) == 1 else key
        if self.ndim > 1 and isinstance(k, np.ndarray) and k.dtype == bool and k.ndim == self.ndim:
            return k
        return None

    @property
    def oindex(self) -> "_OIndex":
        return _OIndex(self)

    @property
    def vindex(self) -> "_VIndex":
        return _VIndex(self)

    def read_crops(self, starts: Any, shape: Any, out: np.ndarray | None = None) -> np.ndarray:
        """Read B crops of ``shape`` whose first corners are ``starts`` (integer array of shape
        (B, ndim)) into a C-contiguous array of shape (B, *shape), in one call."""
        starts = np.asarray(starts)
        shape = tuple(int(s) for s in shape)
        if starts.ndim != 2 or starts.shape[1] != self.ndim or len(shape) != self.ndim:
            raise ValueError(f"starts must have shape (B, {self.ndim}) and shape {self.ndim} entries")
        if starts.dtype.kind not in "iu":
            raise ValueError("starts must be integers")
        if (starts < 0).any():
            raise IndexError("crop starts must be non-negative")
        starts = np.ascontiguousarray(starts, dtype=np.uint64)
        want = (starts.shape[0], *shape)
        if out is None:
            out = np.empty(want, dtype=self.dtype)
        elif out.shape != want or out.dtype != self.dtype or not out.flags.c_contiguous or not out.flags.writeable:
            raise ValueError(f"out must be a writable C-contiguous {self.dtype} array of shape {want}")
        self._native.read_crops_into(starts.reshape(-1), list(shape), out.reshape(-1).view(np.uint8))
        return out

    # -- writes --------------------------------------------------------------------------------
    def _write(self, selection: Region | Orthogonal | np.ndarray, value: Any, shape: tuple[int, ...]) -> None:
        """Write ``value`` (broadcast as numpy does to ``shape``, the selection's shape without
        the dropped dimensions) into a region, orthogonal lists, or points ((N, ndim) coords)."""
        self._check_writable()
        points = isinstance(selection, np.ndarray)
        full = (selection.shape[0],) if points else selection.shape
        if self.dtype == object:
            values = np.broadcast_to(np.asarray(value, dtype=object), shape).ravel().tolist()
        else:
            data = np.ascontiguousarray(np.broadcast_to(_mltypes.to_stored(as_dtype(value, self.dtype)), shape))
            if isinstance(selection, Region) and all(s == 1 for s in selection.steps):
                self._native.write_region(selection.starts, selection.stops, data.reshape(-1).view(np.uint8))
                return
        if points:
            lists = [np.ascontiguousarray(selection.reshape(-1), dtype=np.uint64)]
        elif isinstance(selection, Region):
            lists = [np.arange(a, b, s, dtype=np.uint64) for a, b, s in zip(selection.starts, selection.stops, selection.steps)]
        else:
            lists = [np.ascontiguousarray(x, dtype=np.uint64) for x in selection.lists]
        if self.dtype == object:
            self._native.write_variable(lists, values, list(full), points=points)
        else:
            self._native.write_selection(lists, data.reshape(-1).view(np.uint8), list(full), points=points)

    def __setitem__(self, key: Any, value: Any) -> None:
        """Write with numpy basic indexing (ints, slices with any step) or orthogonal index
        arrays; ``value`` broadcasts to the selection as in numpy. Stored chunks covered in part
        are read, modified and replaced atomically. A boolean mask of the array's shape writes
        where it is true, and integer arrays alone select points (as in ``__getitem__``), as in
        numpy and zarr."""
        mask = self._whole_mask(key)
        if mask is not None:
            self.set_mask_selection(mask, value)
            return
        if selects_points(key, self.ndim):
            self.vindex[key] = value
            return
        selection, drop = parse(key, self.shape)
        self._write(selection, value, kept(selection.shape, drop))

    # -- shape changes -------------------------------------------------------------------------
    def resize(self, new_shape: Any) -> None:
        """Change the shape, as zarr's ``Array.resize``: stored chunks (shards, when sharded)
        wholly outside the new shape are deleted, then the metadata document is replaced
        (atomically, only ``shape`` changed). Chunks the new edge cuts keep what they hold past
        it, as in zarr; a grown region reads as the fill value. Other objects opened on the same
        array keep the old shape (open it again). A rectilinear chunk grid (zarr 3.4) grown past
        its listed edges gets one edge more reaching the new extent, as zarr 3.4 adds it."""
        shape = (new_shape,) if isinstance(new_shape, (int, np.integer)) else tuple(new_shape)
        if not all(is_int(n) and n >= 0 for n in shape):
            raise ValueError(f"new_shape must be non-negative integers, got {new_shape!r}")
        shape = tuple(int(n) for n in shape)
        self._check_writable()
        self._native = self._native.resize(list(shape))
        self._metadata["shape"] = list(shape)
        if self._native.rectilinear:
            grid = json.loads(self._native.metadata_json).get("chunk_grid")
            if grid is not None:
                self._metadata["chunk_grid"] = grid

    def append(self, data: Any, axis: int = 0) -> tuple[int, ...]:
        """Grow the array along ``axis`` by ``data``'s length there and write ``data`` into the
        new part (zarr's ``Array.append``); returns the new shape. ``data``'s other dimensions
        must be the array's."""
        data = np.asanyarray(data)
        if data.ndim != self.ndim:
            raise ValueError(f"data to append has {data.ndim} dimensions, the array {self.ndim}")
        if not -self.ndim <= axis < self.ndim:
            raise ValueError(f"axis {axis} is out of range for a {self.ndim}-dimensional array")
        axis %= self.ndim
        if any(d != axis and data.shape[d] != n for d, n in enumerate(self.shape)):
            raise ValueError(f"data of shape {data.shape} cannot be appended along axis {axis} to an array of shape {self.shape}")
        old = self.shape
        new = tuple(n + data.shape[axis] if d == axis else n for d, n in enumerate(old))
        self.resize(new)
        self[tuple(slice(old[axis], None) if d == axis else slice(None) for d in range(self.ndim))] = data
        return new

    # -- zarr.Array's selection methods --------------------------------------------------------
    # The same names, selections and errors as zarr-python's, with ``out=``: a numpy array (or a
    # zarr ``NDBuffer``) of the selection's shape to read into. One of the array's type and
    # C-contiguous is filled in place, without a temporary (a read repeated into the same
    # ``out`` skips the page faults of a new array); any other writable one gets the values as
    # numpy assigns them. With ``out``, the call returns it (as a numpy array).

    def get_basic_selection(self, selection: Any = Ellipsis, out: Any = None) -> Any:
        """Read ints, slices (any step) and an ellipsis, as ``a[selection]``; index arrays are an
        ``IndexError`` here, as in zarr (see :meth:`get_orthogonal_selection`)."""
        parsed, drop = parse(selection, self.shape, orthogonal=False)
        return self._read(parsed, drop, out)

    def get_orthogonal_selection(self, selection: Any, out: Any = None) -> Any:
        """Read with an integer or boolean array (or int, slice) per dimension, each applied on
        its own (``a.oindex[selection]``)."""
        parsed, drop = parse(selection, self.shape)
        return self._read(parsed, drop, out)

    def get_coordinate_selection(self, selection: Any, out: Any = None) -> np.ndarray:
        """Read the points whose coordinates the integer arrays (one per dimension, broadcast
        together) give (``a.vindex[selection]``)."""
        coords, shape = parse_points(selection, self.shape)
        return self._read_points(coords, shape, out)

    def get_mask_selection(self, mask: Any, out: Any = None) -> np.ndarray:
        """Read the elements where ``mask`` (booleans of the array's shape) is true, in C order."""
        return self._read_points(*self._mask_points(mask), out)

    def get_block_selection(self, selection: Any, out: Any = None) -> Any:
        """Read whole chunks (shards, when sharded: the chunks zarr writes) by their indices:
        an int or a slice of step 1 per dimension (``a.blocks[selection]``)."""
        return self._read(self._block_region(selection), [], out)

    def set_basic_selection(self, selection: Any, value: Any) -> None:
        """Write ``value`` (broadcast) into a basic selection (ints, slices, ellipsis)."""
        parsed, drop = parse(selection, self.shape, orthogonal=False)
        self._write(parsed, value, kept(parsed.shape, drop))

    def set_orthogonal_selection(self, selection: Any, value: Any) -> None:
        """Write ``value`` (broadcast) into an orthogonal selection (``a.oindex[...] = value``)."""
        self.oindex[selection] = value

    def set_coordinate_selection(self, selection: Any, value: Any) -> None:
        """Write ``value`` (broadcast) at the given points (``a.vindex[...] = value``)."""
        self.vindex[selection] = value

    def set_mask_selection(self, mask: Any, value: Any) -> None:
        """Write ``value`` (broadcast) where ``mask`` (booleans of the array's shape) is true."""
        coords, shape = self._mask_points(mask)
        self._write(coords, value, shape)

    def set_block_selection(self, selection: Any, value: Any) -> None:
        """Write ``value`` (broadcast) over whole chunks chosen by their indices."""
        region = self._block_region(selection)
        self._write(region, value, region.shape)

    @property
    def blocks(self) -> "_Blocks":
        """``a.blocks[i, j:k]``: whole chunks by index (see :meth:`get_block_selection`)."""
        return _Blocks(self)

    def _mask_points(self, mask: Any) -> tuple[np.ndarray, tuple[int, ...]]:
        mask = np.asarray(mask)
        if mask.dtype != bool or mask.shape != self.shape:
            raise IndexError(f"a mask selection must be a boolean array of the array's shape {self.shape}, got {mask.dtype} {mask.shape}")
        return parse_points(mask, self.shape)

    def _block_region(self, selection: Any) -> Region:
        """The region that the chunks (write chunks) chosen by ``selection`` cover."""
        key = expand(selection, self.ndim)
        starts, stops = [], []
        for dim, (k, sizes) in enumerate(zip(key, self.write_chunk_sizes)):
            edges = np.concatenate(([0], np.cumsum(sizes, dtype=np.int64)))
            n = len(sizes)
            if isinstance(k, slice):
                if k.step not in (None, 1):
                    raise IndexError(f"block selections take slices of step 1, got step {k.step} for dimension {dim}")
                first, last, _ = k.indices(n)
                last = max(first, last)
            elif is_int(k):
                first = int(k) + n if int(k) < 0 else int(k)
                if not 0 <= first < n:
                    raise IndexError(f"block index {int(k)} is out of bounds for dimension {dim} of {n} chunks")
                last = first + 1
            else:
                raise IndexError(f"block selections take ints and slices, got {k!r} for dimension {dim}")
            starts.append(int(edges[first]))
            stops.append(int(edges[last]))
        return Region(starts, stops, [1] * self.ndim)


def _out_array(out: Any, shape: tuple[int, ...]) -> np.ndarray:
    """``out=`` as a writable numpy array of ``shape`` (a zarr ``NDBuffer`` gives its array)."""
    if not isinstance(out, np.ndarray) and hasattr(out, "as_ndarray_like"):
        out = out.as_ndarray_like()
    if not isinstance(out, np.ndarray):
        raise TypeError(f"out must be a numpy array (or a zarr NDBuffer), got {type(out).__name__}")
    if out.shape != shape:
        raise ValueError(f"out has shape {out.shape}, the selection {shape}")
    if not out.flags.writeable:
        raise ValueError("out is read-only")
    return out


def _fills_in_place(out: np.ndarray, dtype: np.dtype) -> bool:
    """Whether a read goes straight into ``out`` (no temporary): C-contiguous, of ``dtype``."""
    return out.dtype == dtype and out.flags.c_contiguous and dtype != object


def _settle(out: np.ndarray, target: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """``out`` once it holds what was read into ``target`` (itself, or a temporary)."""
    if not _fills_in_place(out, dtype):
        out[...] = target.reshape(out.shape)
    return out


class _Blocks:
    def __init__(self, array: Array):
        self._array = array

    def __getitem__(self, key: Any) -> Any:
        return self._array.get_block_selection(key)

    def __setitem__(self, key: Any, value: Any) -> None:
        self._array.set_block_selection(key, value)


class _OIndex:
    def __init__(self, array: Array):
        self._array = array

    def __getitem__(self, key: Any) -> Any:
        selection, drop = parse(key, self._array.shape)
        return self._array._read(selection, drop)

    def __setitem__(self, key: Any, value: Any) -> None:
        selection, drop = parse(key, self._array.shape)
        self._array._write(selection, value, kept(selection.shape, drop))


class _VIndex:
    def __init__(self, array: Array):
        self._array = array

    def __getitem__(self, key: Any) -> np.ndarray:
        coords, out_shape = parse_points(key, self._array.shape)
        return self._array._read_points(coords, out_shape)

    def __setitem__(self, key: Any, value: Any) -> None:
        coords, out_shape = parse_points(key, self._array.shape)
        self._array._write(coords, value, out_shape)


def _open_raw(path: str) -> Array | None:
    """The array in ``path`` if its element type is one zarrs has no type for and Rust reads as
    raw bits (fixed-length or raw bytes, records): its ``dtype`` is the stored element layout.
    None for any other array."""
    doc = None
    for name in ("zarr.json", ".zarray"):
        try:
            with open(os.path.join(path, name), "rb") as f:
                doc = json.load(f)
            break
        except (OSError, ValueError):
            continue
    return _raw_array(path, doc)


def _raw_array(path: str, doc: Any, create: bool = False) -> Array | None:
    """The array in ``path`` described by ``doc`` (its ``zarr.json`` or ``.zarray`` content),
    opened as raw bits when its element type is one of those (:func:`_open_raw`), or with
    ``create``, created (``doc`` stored as ``zarr.json``); None for any other type."""
    stored = None if not isinstance(doc, dict) else _rawtypes.stored_layout(doc)
    if stored is None:
        return None
    try:
        fill = _rawtypes.fill_bytes(doc, stored)
    except (KeyError, IndexError, TypeError, ValueError, struct.error) as err:
        raise ValueError(f"{path}: invalid metadata: fill_value {doc.get('fill_value')!r} is not a {stored} value ({err!r})") from None
    text = _rawtypes.rust_metadata(doc, stored, fill)
    if create:
        return Array(_native.create_array(path, text, json.dumps(doc)), stored, doc)
    if doc.get("zarr_format") == 2:
        doc = {**doc, "node_type": "array"}
        try:
            with open(os.path.join(path, ".zattrs"), "rb") as f:
                doc["attributes"] = json.load(f)
        except (OSError, ValueError):
            doc["attributes"] = {}
    return Array(_native.open_array_with_metadata(path, text), stored, doc)


def _opened(open_native: Any, path: str, read_only: bool = False) -> Array:
    """``Array(open_native())``, or for the element types Rust reads as raw bits (which zarrs
    refuses), the array opened as those; read-only when ``read_only``."""
    try:
        array = Array(open_native())
    except (_native.ZuringError, ValueError):
        raw = _open_raw(path)
        if raw is None:
            raise
        array = raw
    array._read_only = read_only
    return array


def open_array(path: str | os.PathLike, mode: str = "r+") -> Array:
    """Open the Zarr array in directory ``path``: ``mode="r"`` read-only (writes raise
    ``ValueError``), ``"r+"`` (default) or ``"a"`` readable and writable. Use
    :func:`create_array` to make one."""
    path = os.fspath(path)
    return _opened(lambda: _native.open_array(path), path, _mode_read_only(mode))


@contextlib.contextmanager
def _replacing(path: str, overwrite: bool) -> Iterator[None]:
    """With ``overwrite``, the directory ``path`` (if any) moved aside while the body creates a
    node there, then removed with all it holds; put back if the body fails."""
    if not (overwrite and os.path.isdir(path)):
        yield
        return
    import shutil
    import uuid

    aside = f"{path.rstrip(os.sep)}.zuring-overwritten-{uuid.uuid4().hex}"
    os.rename(path, aside)
    try:
        yield
    except BaseException:
        if os.path.isdir(path):
            shutil.rmtree(path, ignore_errors=True)
        os.rename(aside, path)
        raise
    shutil.rmtree(aside, ignore_errors=True)


def _mode_read_only(mode: str) -> bool:
    """Whether ``mode`` (zarr's ``open`` modes for an existing node) opens read-only."""
    if mode == "r":
        return True
    if mode in ("r+", "a"):
        return False
    raise ValueError(f"mode {mode!r}: zuring opens existing nodes with 'r' (read-only), 'r+' or 'a'; create_array and create_group make new ones")


def create_array(path: str | os.PathLike, metadata: dict | str | None = None, *, overwrite: bool = False, **keywords: Any) -> Array:
    """Create an array and open it, from its ``zarr.json`` content (a dict or JSON text), or
    from zarr-python's ``create_array`` keywords: ``shape``, ``dtype``, ``chunks`` (the inner
    chunks when ``shards`` is given), ``shards``, ``compressors`` (``"auto"``: zarr's zstd; None;
    ``"zstd"``, ``"gzip"``, ``"blosc"`` with zarr's defaults, or codec metadata dicts),
    ``fill_value`` (zarr's default for the type when None), ``dimension_names``, ``attributes``,
    ``chunk_key_separator`` — written as zarr-python writes the same array. Fixed-length and raw
    bytes and records (which Rust handles as raw bits) are checked in Rust as those before the
    metadata is written as given. An array or group already in ``path`` raises
    FileExistsError, nothing written, unless ``overwrite`` (as zarr's): then the directory and
    all it holds are replaced (moved aside, removed once the new array is made; put back if it
    cannot be)."""
    path = os.fspath(path)
    if metadata is None:
        metadata = array_metadata(**keywords)
    elif keywords:
        raise TypeError(f"create_array takes the metadata or keywords, not both (got {sorted(keywords)})")
    with _replacing(path, overwrite):
        return _create_from_metadata(path, metadata)


def _create_from_metadata(path: str, metadata: dict | str) -> Array:
    """:func:`create_array` of ``metadata`` (nothing there: the caller checked)."""
    text = metadata if isinstance(metadata, str) else json.dumps(metadata, default=plain)
    try:
        return Array(_native.create_array(path, text))
    except (_native.ZuringError, ValueError) as err:
        refused = err
    try:
        doc = json.loads(text)
    except ValueError:
        doc = None
    array = _raw_array(path, doc, create=True) if isinstance(doc, dict) and doc.get("zarr_format") == 3 else None
    if array is None:
        raise refused
    return array
