"""``zuring.ZuringCodecPipeline``: a zarr-python CodecPipeline whose reads and writes of local
arrays run in zuring's Rust engine.

Select it with ``zarr.config.set({"codec_pipeline.path": "zuring.ZuringCodecPipeline"})`` or the
``ZARR_CODEC_PIPELINE__PATH`` environment variable.

A batch of chunk requests from zarr becomes one call into Rust, made with the GIL released: the
engine reads every shard index and chunk byte range the batch needs in batched io_uring
submissions, decodes in parallel and writes straight into zarr's output buffer. Whatever zuring
cannot do (other stores, unsupported codecs or data types, Fortran order) goes to zarr-python's
``BatchedCodecPipeline``, with a one-time warning; with ``codec_pipeline.strict: true`` zuring raises
:class:`zuring.UnsupportedError` instead.
"""

from __future__ import annotations

import asyncio
import json
import os
import warnings
from collections.abc import Iterable, Iterator
from typing import Any

import numpy as np
from zarr.abc.codec import Codec, CodecPipeline
from zarr.core.buffer import default_buffer_prototype
from zarr.core.codec_pipeline import BatchedCodecPipeline
from zarr.storage import LocalStore

from zuring import _native

_warned: set[str] = set()

# zarr >= 3.2 reads one GetResult per chunk from read() (for `array.read_missing_chunks`); 3.1
# ignores the return value, so zuring skips the per-chunk existence checks there.
_NEEDS_RESULTS = tuple(int(x) for x in __import__("zarr").__version__.split(".")[:2]) >= (3, 2)

#: How many times each path ran (tests use this to prove the Rust path ran).
STATS = {"native_reads": 0, "native_calls": 0, "native_writes": 0, "fallback_reads": 0, "fallback_writes": 0}


def _config(key: str, default: Any) -> Any:
    import zarr

    try:
        return zarr.config.get(key, default)
    except Exception:  # pragma: no cover - zarr config without the key
        return default


class _Unsupported(Exception):
    """This request cannot go through zuring (the reason is the message)."""


def _codecs_of(metadata: Any) -> list[Codec]:
    if metadata.zarr_format == 3:
        return list(metadata.codecs)
    from zarr.codecs._v2 import V2Codec

    return [V2Codec(filters=metadata.filters, compressor=metadata.compressor)]


def _metadata_json(metadata: Any) -> str:
    buffers = metadata.to_buffer_dict(default_buffer_prototype())
    key = "zarr.json" if metadata.zarr_format == 3 else ".zarray"
    return buffers[key].to_bytes().decode()


def _parse_key(path: str, metadata: Any) -> tuple[str, tuple[int, ...]]:
    """Split a chunk's store path into the array's prefix and the chunk coordinates."""
    ndim = len(metadata.shape)
    if metadata.zarr_format == 3:
        enc = metadata.chunk_key_encoding
        name, sep = enc.name, enc.separator
    else:
        name, sep = "v2", metadata.dimension_separator or "."
    parts = path.split("/")
    if name == "default":
        if sep == "/":
            head, key = parts[: len(parts) - ndim - 1], parts[len(parts) - ndim - 1 :]
            if not key or key[0] != "c":
                raise _Unsupported(f"unexpected chunk key {path!r}")
            coords = key[1:]
        else:
            head, last = parts[:-1], parts[-1]
            bits = last.split(".")
            if bits[0] != "c":
                raise _Unsupported(f"unexpected chunk key {path!r}")
            coords = bits[1:]
    else:
        if sep == "/" and ndim > 0:
            head, coords = parts[: len(parts) - ndim], parts[len(parts) - ndim :]
        else:
            head, last = parts[:-1], parts[-1]
            coords = [] if ndim == 0 else last.split(".")
    if len(coords) != ndim:
        raise _Unsupported(f"cannot parse chunk key {path!r}")
    return "/".join(head), tuple(int(c) for c in coords)


def _dim(sel: Any, length: int) -> Any:
    """A slice with a positive step as (start, stop, step) (cheap to pass), else an index array."""
    if isinstance(sel, slice):
        start, stop, step = sel.indices(length)
        if step > 0:
            return (start, max(start, stop), step)
    return _positions(sel, length)


def _positions(sel: Any, length: int) -> np.ndarray:
    if isinstance(sel, slice):
        return np.arange(*sel.indices(length), dtype=np.int64).astype(np.uint64)
    arr = np.asarray(sel)
    if arr.dtype == bool:
        return np.flatnonzero(arr).astype(np.uint64)
    return arr.ravel().astype(np.uint64)


def _request(coords, chunk_shape, chunk_sel, out_sel, drop_axes, out_shape) -> tuple:
    ndim = len(chunk_shape)
    if not isinstance(out_sel, tuple):
        # Coordinate (vindex) or mask selection: zipped per-dimension arrays, flat output.
        n = out_shape[0] if out_shape else 1
        pos = _positions(out_sel, n)
        points = np.stack([np.asarray(c).ravel().astype(np.uint64) for c in chunk_sel], axis=1) if ndim else np.zeros((len(pos), 0), np.uint64)
        return ("p", list(coords), np.ascontiguousarray(points), pos)
    indices, positions = [], []
    axis = 0
    for d in range(ndim):
        sel = chunk_sel[d] if d < len(chunk_sel) else slice(None)
        if isinstance(sel, (int, np.integer)):
            indices.append(np.array([int(sel)], dtype=np.uint64))
            positions.append(None)
            continue
        indices.append(_dim(sel, chunk_shape[d]))
        if d in drop_axes:
            positions.append(None)
            continue
        if axis >= len(out_sel):
            raise _Unsupported("output selection has fewer axes than expected")
        positions.append(_dim(out_sel[axis], out_shape[axis]))
        axis += 1
    return ("o", list(coords), indices, positions)


class _Coalescer:
    """Reads of one array that arrive in the same event-loop tick (say, 32 crops issued with
    ``asyncio.gather``) become one Rust call: one IO batch, one decode pool run."""

    def __init__(self, array: Any) -> None:
        self.array = array
        self.pending: list[tuple] = []
        self.loop: asyncio.AbstractEventLoop | None = None

    def submit(self, requests: list[tuple], shape: list[int], raw: np.ndarray) -> asyncio.Future:
        loop = asyncio.get_running_loop()
        if self.loop is not loop:
            self.loop, self.pending = loop, []
        future = loop.create_future()
        if not self.pending:
            loop.call_soon(self._flush)
        self.pending.append((requests, shape, raw, future))
        return future

    def _flush(self) -> None:
        items, self.pending = self.pending, []
        if items and self.loop is not None:
            self.loop.create_task(self._run(items))

    def _call(self, items: list[tuple]) -> None:
        STATS["native_calls"] += 1
        requests = [(r[0], i, *r[1:]) for i, item in enumerate(items) for r in item[0]]
        self.array.read_chunk_requests(requests, [item[1] for item in items], [item[2] for item in items])

    async def _run(self, items: list[tuple]) -> None:
        distinct = len({id(item[2]) for item in items}) == len(items)
        try:
            if not distinct:
                raise RuntimeError("shared output buffers: read one by one")
            await asyncio.to_thread(self._call, items)
            for *_, future in items:
                if not future.done():
                    future.set_result(None)
        except Exception as err:
            if len(items) == 1:
                if not items[0][3].done():
                    items[0][3].set_exception(err)
                return
            # Find whose request failed: each caller gets its own result.
            for item in items:
                try:
                    await asyncio.to_thread(self._call, [item])
                    if not item[3].done():
                        item[3].set_result(None)
                except Exception as one:
                    if not item[3].done():
                        item[3].set_exception(one)


class ZuringCodecPipeline(CodecPipeline):
    """zarr-python CodecPipeline backed by zuring (see the module docs)."""

    # zarr registers pipelines by module and name: this one is "zuring.ZuringCodecPipeline".
    __module__ = "zuring"

    def __init__(self, inner: BatchedCodecPipeline, metadata: Any = None, store: Any = None) -> None:
        self._inner = inner
        self._metadata = metadata
        self._store = store
        self._arrays: dict[str, Any] = {}
        self._coalescers: dict[str, _Coalescer] = {}

    # -- pickling (dask ships pipelines to workers): native handles are reopened lazily --------
    def __getstate__(self) -> dict:
        return {"inner": self._inner, "metadata": self._metadata, "store": self._store}

    def __setstate__(self, state: dict) -> None:
        self.__init__(state["inner"], state["metadata"], state["store"])

    # -- construction and the parts zuring leaves to zarr --------------------------------------
    @classmethod
    def from_codecs(cls, codecs: Iterable[Codec]) -> "ZuringCodecPipeline":
        return cls(BatchedCodecPipeline.from_codecs(codecs))

    @classmethod
    def from_array_metadata_and_store(cls, array_metadata: Any, store: Any) -> "ZuringCodecPipeline":
        return cls(BatchedCodecPipeline.from_codecs(_codecs_of(array_metadata)), array_metadata, store)

    def evolve_from_array_spec(self, array_spec: Any) -> "ZuringCodecPipeline":
        return type(self)(self._inner.evolve_from_array_spec(array_spec), self._metadata, self._store)

    def __iter__(self) -> Iterator[Codec]:
        return iter(self._inner)

    @property
    def supports_partial_decode(self) -> bool:
        return self._inner.supports_partial_decode

    @property
    def supports_partial_encode(self) -> bool:
        return self._inner.supports_partial_encode

    def validate(self, *, shape: tuple[int, ...], dtype: Any, chunk_grid: Any) -> None:
        self._inner.validate(shape=shape, dtype=dtype, chunk_grid=chunk_grid)

    def compute_encoded_size(self, byte_length: int, array_spec: Any) -> int:
        return self._inner.compute_encoded_size(byte_length, array_spec)

    async def decode(self, chunk_bytes_and_specs: Iterable[tuple[Any, Any]]) -> Iterable[Any]:
        return await self._inner.decode(chunk_bytes_and_specs)

    async def encode(self, chunk_arrays_and_specs: Iterable[tuple[Any, Any]]) -> Iterable[Any]:
        return await self._inner.encode(chunk_arrays_and_specs)

    # -- zuring's paths ------------------------------------------------------------------------
    def _fallback(self, reason: str) -> None:
        if _config("codec_pipeline.strict", False):
            raise _native.UnsupportedError(f"zuring cannot handle this request: {reason}")
        if reason not in _warned:
            _warned.add(reason)
            warnings.warn(f"zuring: falling back to zarr's BatchedCodecPipeline: {reason}", RuntimeWarning, stacklevel=3)

    def _native_array(self, store_path: Any) -> tuple[Any, tuple[int, ...]]:
        array, coords, _ = self._native_entry(store_path)
        return array, coords

    def _native_entry(self, store_path: Any) -> tuple[Any, tuple[int, ...], str]:
        if self._metadata is None:
            raise _Unsupported("no array metadata (pipeline made with from_codecs)")
        store = store_path.store
        if not isinstance(store, LocalStore):
            raise _Unsupported(f"store {type(store).__name__} (zuring reads LocalStore itself)")
        prefix, coords = _parse_key(store_path.path, self._metadata)
        array = self._arrays.get(prefix)
        if array is None:
            directory = os.path.join(os.fspath(store.root), prefix)
            try:
                array = _native.open_array_with_metadata(directory, _metadata_json(self._metadata))
            except _native.UnsupportedError as err:
                raise _Unsupported(str(err)) from err
            if array.element_size == 0:
                raise _Unsupported(f"data type {array.data_type} (variable size)")
            self._arrays[prefix] = array
            self._coalescers[prefix] = _Coalescer(array)
        return array, coords, prefix

    async def read(self, batch_info: Iterable[tuple], out: Any, drop_axes: tuple[int, ...] = ()) -> Any:
        """Read a batch; returns one ``{"status": "present" | "missing"}`` per chunk (zarr >= 3.2
        uses them for ``array.read_missing_chunks``; zarr 3.1 ignores them)."""
        batch = list(batch_info)
        if not batch:
            return ()
        try:
            out_nd = out.as_ndarray_like()
            if not isinstance(out_nd, np.ndarray) or not out_nd.flags.c_contiguous:
                raise _Unsupported("output is not a C-contiguous numpy array")
            if out_nd.dtype.hasobject:
                raise _Unsupported(f"object dtype {out_nd.dtype}")
            prefix = None
            requests = []
            for byte_getter, chunk_spec, chunk_sel, out_sel, *_ in batch:
                _, coords, prefix = self._native_entry(byte_getter)
                requests.append(_request(coords, chunk_spec.shape, chunk_sel, out_sel, drop_axes, out_nd.shape))
            native_order = out_nd.dtype.isnative
            target = out_nd if native_order else np.empty(out_nd.shape, dtype=out_nd.dtype.newbyteorder("="))
            raw = target.reshape(-1).view(np.uint8)
            await self._coalescers[prefix].submit(requests, list(target.shape), raw)
            if not native_order:
                out_nd[...] = target
            STATS["native_reads"] += 1
            if not _NEEDS_RESULTS:
                return None
            root = os.fspath(batch[0][0].store.root)
            return tuple(
                {"status": "present" if os.path.exists(os.path.join(root, item[0].path)) else "missing"}
                for item in batch
            )
        except _Unsupported as why:
            self._fallback(str(why))
            STATS["fallback_reads"] += 1
            return await self._inner.read(batch, out, drop_axes)

    async def write(self, batch_info: Iterable[tuple], value: Any, drop_axes: tuple[int, ...] = ()) -> None:
        batch = list(batch_info)
        if not batch:
            return
        try:
            array, starts, stops = None, None, None
            cells = 0
            for byte_setter, chunk_spec, chunk_sel, out_sel, *_ in batch:
                if chunk_spec.config.write_empty_chunks:
                    raise _Unsupported("write_empty_chunks=True")
                if chunk_spec.config.order != "C":
                    raise _Unsupported(f"order {chunk_spec.config.order}")
                array, coords = self._native_array(byte_setter)
                if not isinstance(out_sel, tuple):
                    raise _Unsupported("coordinate writes")
                lo, hi = [], []
                for d, (c, n) in enumerate(zip(coords, chunk_spec.shape)):
                    sel = chunk_sel[d] if d < len(chunk_sel) else slice(None)
                    if isinstance(sel, (int, np.integer)):
                        a, b = int(sel), int(sel) + 1
                    elif isinstance(sel, slice):
                        a, b, step = sel.indices(n)
                        if step != 1:
                            raise _Unsupported("strided writes")
                    else:
                        raise _Unsupported("integer-array writes")
                    origin = c * array.shards[d] if array.shards else c * array.chunks[d]
                    lo.append(origin + a)
                    hi.append(origin + b)
                cells += int(np.prod([b - a for a, b in zip(lo, hi)]))
                starts = lo if starts is None else [min(x, y) for x, y in zip(starts, lo)]
                stops = hi if stops is None else [max(x, y) for x, y in zip(stops, hi)]
            region = [b - a for a, b in zip(starts, stops)]
            if int(np.prod(region)) != cells:
                raise _Unsupported("the chunks of this write do not form one region")
            data = value.as_ndarray_like()
            if not isinstance(data, np.ndarray):
                raise _Unsupported("value is not a numpy array")
            data = np.asarray(data, dtype=np.dtype(data.dtype).newbyteorder("="))
            # The value has the selection's shape (integer-indexed axes dropped), or broadcasts.
            data = data.reshape(region) if data.size == cells else np.broadcast_to(data, region)
            data = np.ascontiguousarray(data)
            await asyncio.to_thread(array.write_region, starts, stops, data.reshape(-1).view(np.uint8))
            STATS["native_writes"] += 1
        except _Unsupported as why:
            self._fallback(str(why))
            STATS["fallback_writes"] += 1
            await self._inner.write(batch, value, drop_axes)


def _register() -> None:
    from zarr.registry import register_pipeline

    register_pipeline(ZuringCodecPipeline)


_register()
