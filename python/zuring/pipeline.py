"""``zuring.ZuringCodecPipeline``: a zarr-python CodecPipeline whose reads and writes run in
zuring's Rust engine.

Select it with ``zarr.config.set({"codec_pipeline.path": "zuring.ZuringCodecPipeline"})`` or the
``ZARR_CODEC_PIPELINE__PATH`` environment variable.

A batch of chunk requests from zarr becomes one call into Rust, made with the GIL released: the
engine reads every shard index and chunk byte range the batch needs in batched io_uring
submissions, decodes in parallel and writes straight into zarr's output buffer. Other stores
(MemoryStore, FsspecStore, ObjectStore, ...) take the same path with their bytes fetched (and
written) through the store's own async API, concurrently, in the same two batches (shard indexes,
then chunk ranges). Writes of any selection are encoded in Rust too. Strings and vlen bytes are
planned, read, decoded and encoded in Rust as well, in any store (their elements cross into
Python as ``str`` / ``bytes`` objects); fixed-length and raw bytes and structured records, which
zarrs has no types for, as raw bits of their size, laid out as zarr's own codecs store them.
zarr-python's ``numcodecs.*`` codecs run in Rust where zarrs has them or their v3 twin (zstd,
gzip, blosc, zlib, bz2, shuffle, ...), and ``numcodecs.delta``, ``numcodecs.lz4``,
``numcodecs.lzma``, ``numcodecs.crc32``, ``numcodecs.crc32c`` and zarr 3.4's ``scale_offset``
and ``cast_value`` in codecs of zuring's own. Arrays with zarr 3.4's rectilinear chunk grids
are read and written by zuring too. Whatever zuring cannot do (codecs neither has such as
``numcodecs.pickle``, numcodecs filters numpy would run otherwise, non-numpy buffers) goes to
zarr-python's ``BatchedCodecPipeline``, with a one-time warning; with ``codec_pipeline.strict:
true`` zuring raises :class:`zuring.UnsupportedError` instead.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import json
import math
import os
import threading
import warnings
from collections.abc import AsyncIterator, Iterable, Iterator
from typing import Any

import numpy as np
from zarr.abc.codec import Codec, CodecPipeline
from zarr.codecs import ShardingCodec
from zarr.core.buffer import default_buffer_prototype
from zarr.core.codec_pipeline import BatchedCodecPipeline
from zarr.storage import LocalStore

from zuring import _native
from zuring._convert import as_dtype, assign
from zuring._rawtypes import raw_layout, rust_metadata

_warned: set[str] = set()

# The most parsed chunk keys a pipeline keeps (about 200 bytes each).
_KEYS_KEPT = 1 << 16

# zarr >= 3.2 reads one GetResult per chunk from read() (for `array.read_missing_chunks`); 3.1
# ignores the return value, so zuring returns None there.
_NEEDS_RESULTS = tuple(int(x) for x in __import__("zarr").__version__.split(".")[:2]) >= (3, 2)

#: How many times each path ran (tests use this to prove the Rust path ran).
STATS = {
    "native_reads": 0,
    "native_calls": 0,
    "loop_reads": 0,
    "native_writes": 0,
    "store_fetch_calls": 0,
    "store_writes": 0,
    "fallback_reads": 0,
    "fallback_writes": 0,
}


#: A lone read of at most this many decoded bytes of chunks is tried on the event loop's thread
#: from the page cache (no wait for the disk) before going to a worker thread: the hop there and
#: back costs more than decoding it.
_LOOP_READ_BYTES = 512 << 10


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


def _inner_chunk_order(metadata: Any) -> str:
    """How zarr-python lays out the inner chunks of the shards it writes: its sharding codec's
    ``subchunk_write_order`` (zarr >= 3.4; "unordered" promises nothing), Morton order before
    that."""
    for codec in metadata.codecs if metadata.zarr_format == 3 else ():
        if isinstance(codec, ShardingCodec):
            order = getattr(codec, "subchunk_write_order", "morton")
            return "lexicographic" if order == "unordered" else order
    return "lexicographic"


def _rectilinear_allowed() -> Any:
    """zarr 3.4 neither stores nor parses a rectilinear grid's metadata while its experimental
    ``array.rectilinear_chunks`` flag is off, though it goes on reading and writing an array
    made while it was on; zuring's own handling of that metadata (for Rust, not for a store)
    does the same."""
    import zarr

    return zarr.config.set({"array.rectilinear_chunks": True})


def _metadata_json(metadata: Any) -> str:
    try:
        buffers = metadata.to_buffer_dict(default_buffer_prototype())
    except ValueError:
        with _rectilinear_allowed():
            buffers = metadata.to_buffer_dict(default_buffer_prototype())
    key = "zarr.json" if metadata.zarr_format == 3 else ".zarray"
    return buffers[key].to_bytes().decode()


def _raw_layout(metadata: Any) -> np.dtype | None:
    """For the fixed-size types zarrs has no type for (fixed-length byte strings, raw bytes,
    structured records), the numpy layout of one stored element as zarr's own codecs store it
    (:func:`zuring._rawtypes.raw_layout`); Rust handles them as raw bits of that size. None for
    every other type."""
    try:
        dtype = np.dtype(metadata.dtype.to_native_dtype())
    except (AttributeError, TypeError):  # pragma: no cover - a data type without a numpy dtype
        return None
    if dtype.kind not in "SV":
        return None
    return raw_layout(dtype, json.loads(_metadata_json(metadata)))


def _raw_metadata_json(metadata: Any, stored: np.dtype) -> str:
    """The array's metadata for Rust with its data type as raw bits of ``stored``'s size and
    its fill value (zarr's; zeros when it has none, as zarr reads it) as stored bytes."""
    fill = metadata.fill_value
    dtype = np.dtype(metadata.dtype.to_native_dtype())
    value = np.zeros((), dtype=stored) if fill is None else np.asarray(fill, dtype=dtype).astype(stored)
    return rust_metadata(json.loads(_metadata_json(metadata)), stored, value.tobytes())


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


def _slices(sel: Any, shape: Any) -> list | None:
    """Per dimension ``(start, stop, step)`` when ``sel`` is a tuple of slices with positive
    steps covering every dimension (basic indexing: most requests), else None."""
    if sel.__class__ is not tuple or len(sel) != len(shape):
        return None
    out = []
    for s, n in zip(sel, shape):
        if s.__class__ is not slice:
            return None
        dim = _dim(s, n)
        if dim.__class__ is not tuple:  # a negative step: positions as an array
            return None
        out.append(dim)
    return out


def _basic(sel: Any, slices: tuple) -> bool:
    """Whether ``sel`` is a tuple of one slice per dimension (most reads: Rust resolves them);
    ``slices``: ``(slice,) * ndim``."""
    return sel.__class__ is tuple and tuple(map(type, sel)) == slices


def _covers(sel: Any, shape: Any) -> bool:
    """Whether a basic selection within a chunk of ``shape`` takes every element of it."""
    if sel.__class__ is not tuple or len(sel) != len(shape):
        return False
    for s, n in zip(sel, shape):
        if isinstance(s, slice):
            if s.indices(n) != (0, n, 1):
                return False
        elif not (isinstance(s, (int, np.integer)) and n == 1):
            return False
    return True


def _request(coords, chunk_shape, chunk_sel, out_sel, drop_axes, out_shape) -> tuple:
    if not drop_axes:
        indices = _slices(chunk_sel, chunk_shape)
        if indices is not None:
            positions = _slices(out_sel, out_shape)
            if positions is not None:
                return ("o", list(coords), indices, positions)
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


def _byte_request(start: int | None, end: int | None, suffix: int | None) -> Any:
    from zarr.abc.store import OffsetByteRequest, RangeByteRequest, SuffixByteRequest

    if suffix is not None:
        return SuffixByteRequest(suffix)
    if start is None:
        return None
    if end is None:
        return OffsetByteRequest(start)
    return RangeByteRequest(start, end)


async def _fetch_all(store: Any, asks: list[tuple], spec: Any, kind: str = "chunks") -> list[Any]:
    """Get one batch of ``(key, start, end, suffix)`` from ``store``, concurrently (at most
    zarr's ``async.concurrency`` calls at a time); None for a missing key (Rust reports the
    stored chunks it had no bytes for). ``kind`` is what the batch holds (``"indexes"``: shard
    indexes, one per key; ``"chunks"``): the chunk ranges of each shard go to the store's ``get_ranges`` where it has
    one (zarr >= 3.4), one call per shard that coalesces them as the store sees fit, with the
    array's ``sharding_coalesce_*`` limits, as zarr's own sharding codec reads them; without
    one, ranges within those limits of each other become one ``get``. Everything else goes to
    ``get``."""
    limit = _config("async.concurrency", None)
    semaphore = asyncio.Semaphore(limit) if limit else None
    prototype = getattr(spec, "prototype", None) or default_buffer_prototype()
    out: list[Any] = [None] * len(asks)

    async def limited(call: Any) -> None:
        if semaphore is None:
            await call
        else:
            async with semaphore:
                await call

    async def one(i: int, key: str, start: int | None, end: int | None, suffix: int | None) -> None:
        buf = await store.get(key, prototype, byte_range=_byte_request(start, end, suffix))
        if buf is not None:
            out[i] = buf.as_numpy_array()

    # The array's limits (zarr >= 3.4), else zarr's config keys of the same names, else zarr
    # 3.4's defaults.
    config = getattr(spec, "config", None)
    limits = {}
    for arg, name, default in (("max_gap_bytes", "sharding_coalesce_max_gap_bytes", 1 << 20), ("max_coalesced_bytes", "sharding_coalesce_max_bytes", 16 << 20)):
        value = getattr(config, name, None)
        limits[arg] = _config(f"array.{name}", default) if value is None else value

    async def merged(key: str, items: list[tuple[int, int, int]]) -> None:
        # A store without get_ranges (zarr < 3.4): nearby ranges of one key become one get.
        for start, end, members in _merge_ranges(items, limits["max_gap_bytes"], limits["max_coalesced_bytes"]):
            buf = await store.get(key, prototype, byte_range=_byte_request(start, end, None))
            if buf is None:
                continue
            data = buf.as_numpy_array()
            for i, a, b in members:
                out[i] = data[a - start : b - start]

    async def ranges(key: str, items: list[tuple[int, int, int]]) -> None:
        from zarr.abc.store import RangeByteRequest

        requests = [RangeByteRequest(start, end) for _, start, end in items]
        try:
            async for group in store.get_ranges(key, requests, prototype=prototype, **limits):
                for j, buf in group:
                    if buf is not None:
                        out[items[j][0]] = buf.as_numpy_array()
        except BaseExceptionGroup as group:
            # The store's way of saying the key is gone: the shard reads as missing.
            _, rest = group.split(FileNotFoundError)
            if rest is not None:
                raise rest from None
            for i, _, _ in items:
                out[i] = None

    calls = []
    by_key: dict[str, list[tuple[int, int, int]]] = {}
    for i, (key, start, end, suffix) in enumerate(asks):
        if kind == "chunks" and start is not None and end is not None:
            by_key.setdefault(key, []).append((i, start, end))
        else:
            calls.append(one(i, key, start, end, suffix))
    per_key = ranges if callable(getattr(store, "get_ranges", None)) else merged
    calls.extend(per_key(key, items) for key, items in by_key.items())
    await asyncio.gather(*(limited(call) for call in calls))
    return out


def _merge_ranges(items: list[tuple[int, int, int]], max_gap: int, max_bytes: int) -> list[tuple[int, int, list[tuple[int, int, int]]]]:
    """``(tag, start, end)`` ranges of one object, merged where the gap between neighbours is at
    most ``max_gap`` and the merged range stays within ``max_bytes`` (a range larger than that
    stays alone): ``(start, end, members)`` per merged range."""
    groups: list[list[Any]] = []
    for item in sorted(items, key=lambda t: (t[1], t[2])):
        _, start, end = item
        if groups:
            group = groups[-1]
            if start - group[1] <= max_gap and max(end, group[1]) - group[0] <= max_bytes:
                group[1] = max(end, group[1])
                group[2].append(item)
                continue
        groups.append([start, end, [item]])
    return [(start, end, members) for start, end, members in groups]


class _Coalescer:
    """Reads of one array that arrive in the same event-loop tick (say, 32 crops issued with
    ``asyncio.gather``) become one Rust call: one IO batch, one decode pool run. Each event loop
    has its reads gathered apart: threads that each run a loop of their own (``asyncio.run`` per
    thread) read the same array at once, and a loop's reads are settled on that loop."""

    def __init__(self, array: Any, store: Any = None) -> None:
        self.array = array
        # A store zuring does not read itself: its bytes come through its async API.
        self.store = store
        # Reads waiting for their loop's next flush, by loop (an entry lives from a loop's first
        # read of a tick to that tick's flush; each loop's list is touched only on its thread).
        self.pending: dict[asyncio.AbstractEventLoop, list[tuple]] = {}
        self.tasks: set[asyncio.Task] = set()

    def submit(self, requests: list[tuple], shape: list[int], raw: np.ndarray, spec: Any = None, nbytes: int = -1) -> asyncio.Future:
        loop = asyncio.get_running_loop()
        pending = self.pending.setdefault(loop, [])
        future = loop.create_future()
        if not pending:
            loop.call_soon(self._flush, loop)
        # `spec` (the chunks' ArraySpec): the buffer prototype and config for a store's reads;
        # `nbytes`: the decoded size of the chunks read (-1: unknown).
        pending.append((requests, shape, raw, future, spec, nbytes))
        return future

    def _flush(self, loop: asyncio.AbstractEventLoop) -> None:
        items = self.pending.pop(loop, None)
        if not items:
            return
        if len({id(item[2]) for item in items}) != len(items):
            # Shared output buffers: read one by one.
            self._start(loop, self._one_by_one(items))
            return
        if len(items) == 1 and self.store is None and 0 <= items[0][5] <= _LOOP_READ_BYTES and self._read_here(items[0]):
            return
        missing: set[tuple[int, ...]] = set()
        # The Rust call on the loop's executor; its completion settles the callers' futures
        # straight from the callback (no task in between: a single small read pays for every
        # step of the event loop).
        done = loop.run_in_executor(None, self._call, items, loop, missing)

        def settle(done: asyncio.Future) -> None:
            if done.cancelled():  # the loop is shutting down
                for item in items:
                    item[3].cancel()
                return
            err = done.exception()
            if err is None:
                for item in items:
                    if not item[3].done():
                        item[3].set_result(missing)
            elif len(items) == 1:
                if not items[0][3].done():
                    items[0][3].set_exception(err)
            else:
                # Find whose request failed: each caller gets its own result.
                self._start(loop, self._one_by_one(items))

        done.add_done_callback(settle)

    def _read_here(self, item: tuple) -> bool:
        """Serve a small read on this (the event loop's) thread if the page cache holds its
        bytes; whether it did (settling its future, with the result or the error)."""
        requests, shape, raw, future = item[:4]
        try:
            missing = self.array.read_chunk_requests([(r[0], 0, *r[1:]) for r in requests], [shape], [raw], cached_only=True)
        except Exception as err:
            if not future.done():
                future.set_exception(err)
            return True
        if missing is None:
            return False
        STATS["native_calls"] += 1
        STATS["loop_reads"] += 1
        if not future.done():
            future.set_result({tuple(c) for c in missing})
        return True

    def _call(self, items: list[tuple], loop: asyncio.AbstractEventLoop, missing: set[tuple[int, ...]]) -> None:
        """Read `items` in one Rust call; the stored chunks found missing go into `missing`."""
        STATS["native_calls"] += 1
        spec = items[0][4]
        requests = [(r[0], i, *r[1:]) for i, item in enumerate(items) for r in item[0]]
        shapes, raws = [item[1] for item in items], [item[2] for item in items]
        if self.store is None:
            gone = self.array.read_chunk_requests(requests, shapes, raws)
        else:
            STATS["store_fetch_calls"] += 1

            def fetch(asks: list[tuple], kind: str) -> list[Any]:
                # Called from this worker thread while the event loop is free: run the gets there.
                return asyncio.run_coroutine_threadsafe(_fetch_all(self.store, asks, spec, kind), loop).result()

            gone = self.array.read_chunk_requests_fetched(requests, shapes, raws, fetch)
        missing.update(tuple(c) for c in gone)

    def _start(self, loop: asyncio.AbstractEventLoop, work: Any) -> None:
        """Run `work` as a task, referenced until it ends (the loop keeps only weak references)."""
        task = loop.create_task(work)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def _one_by_one(self, items: list[tuple]) -> None:
        """Read each item alone (shared output buffers, or a failed call of several): each caller
        gets its own result."""
        loop = asyncio.get_running_loop()
        for item in items:
            try:
                one_missing: set[tuple[int, ...]] = set()
                await asyncio.to_thread(self._call, [item], loop, one_missing)
                if not item[3].done():
                    item[3].set_result(one_missing)
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
        # Fixed-length bytes, raw bytes, records: the stored element layout Rust reads as raw bits.
        self._raw = None if metadata is None else _raw_layout(metadata)
        self._arrays: dict[str, Any] = {}
        self._coalescers: dict[str, _Coalescer] = {}
        # (id(store), prefix) -> (store, its root, array, key): the per-chunk lookup of a batch
        # (the store is held, so its id is not reused while the entry lives; a LocalStore that
        # moves gets a new root object, which misses).
        self._entries: dict[tuple[int, str], tuple[Any, Any, Any, str]] = {}
        # Chunk key -> (the array's prefix, chunk coordinates): parsed once per key (zarr
        # gives each read's keys as new strings; a dict lookup costs a tenth of the parse).
        self._keys: dict[str, tuple[str, tuple[int, ...]]] = {}

    # zarr compares arrays (and so their pipelines) by value: equal codecs, equal pipelines.
    def __eq__(self, other: object) -> bool:
        if not isinstance(other, ZuringCodecPipeline):
            return NotImplemented
        return self._inner == other._inner and self._metadata == other._metadata

    def __hash__(self) -> int:
        return hash(self._inner)

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
        # Once per kind of reason, whichever array gives it (the text after the last ": "
        # says what; before it, where).
        kind = reason.rsplit(": ", 1)[-1]
        if kind not in _warned:
            _warned.add(kind)
            warnings.warn(f"zuring: falling back to zarr's BatchedCodecPipeline: {reason}", RuntimeWarning, stacklevel=3)

    def _native_entry(self, store_path: Any) -> tuple[Any, tuple[int, ...], str]:
        if self._metadata is None:
            raise _Unsupported("no array metadata (pipeline made with from_codecs)")
        store, key = store_path.store, store_path.path
        parsed = self._keys.get(key)
        if parsed is None:
            parsed = _parse_key(key, self._metadata)
            if len(self._keys) >= _KEYS_KEPT:
                self._keys.clear()
            self._keys[key] = parsed
        prefix, coords = parsed
        hit = self._entries.get((id(store), prefix))
        if hit is not None and hit[0] is store and hit[1] is getattr(store, "root", None):
            return hit[2], coords, hit[3]
        # (A LocalStore stand-in without a directory, such as a test double made with
        # `spec=LocalStore`, is read through its API like any other store.)
        local = isinstance(store, LocalStore) and isinstance(getattr(store, "root", None), (str, os.PathLike))
        # A LocalStore's arrays are read by zuring from their directory (keyed by it: the store
        # can move); any other store's by key (the array's prefix in the store), with bytes
        # fetched through that store object.
        key = os.path.join(os.fspath(store.root), prefix) if local else f"{id(store)}:{prefix}"
        array = self._arrays.get(key)
        if array is None:
            location = key if local else prefix
            try:
                text = _metadata_json(self._metadata) if self._raw is None else _raw_metadata_json(self._metadata, self._raw)
                array = _native.open_array_with_metadata(location, text, _inner_chunk_order(self._metadata))
            except (_native.ZuringError, ValueError) as err:
                # zarr-python accepted this metadata; whatever zarrs cannot take is zarr's to do.
                raise _Unsupported(str(err)) from err
            self._arrays[key] = array
            self._coalescers[key] = _Coalescer(array, None if local else store)
        self._entries[(id(store), prefix)] = (store, getattr(store, "root", None), array, key)
        return array, coords, key

    async def _grown_entry(self, store_path: Any, coords: tuple[int, ...]) -> tuple[Any, tuple[int, ...], str]:
        """zarr grows an array in place (``resize``, ``append``), keeping its pipeline: a
        rectilinear grid then lists chunks this pipeline's metadata does not (growth appends
        edges; the listed ones never change). Read the array's stored metadata again and open
        the array with it; a chunk it does not list either is zarr's to read."""
        prefix, _ = _parse_key(store_path.path, self._metadata)
        key = f"{prefix}/zarr.json" if prefix else "zarr.json"
        stored = await store_path.store.get(key, prototype=default_buffer_prototype())
        if stored is None or self._metadata.zarr_format != 3:
            raise _Unsupported(f"chunk {coords} is not in the array's rectilinear chunk grid")
        from zarr.core.metadata import ArrayV3Metadata

        with _rectilinear_allowed():
            self._metadata = ArrayV3Metadata.from_dict(json.loads(stored.to_bytes()))
        self._arrays.clear()
        self._coalescers.clear()
        self._entries.clear()
        self._keys.clear()
        array, coords, entry = self._native_entry(store_path)
        if not array.has_chunk(coords):
            raise _Unsupported(f"chunk {coords} is not in the array's rectilinear chunk grid")
        return array, coords, entry

    async def read(self, batch_info: Iterable[tuple], out: Any, drop_axes: tuple[int, ...] = ()) -> Any:
        """Read a batch; returns one ``{"status": "present" | "missing"}`` per chunk (zarr >= 3.2
        uses them for ``array.read_missing_chunks``; zarr 3.1 ignores them)."""
        batch = list(batch_info)
        if not batch:
            return ()
        try:
            out_nd = out.as_ndarray_like()
            if not isinstance(out_nd, np.ndarray):
                raise _Unsupported(f"output is a {type(out_nd).__name__}, not a numpy array")
            entry, array = None, None
            requests, chunks = [], []
            ndim = len(out_nd.shape)
            slices = (slice,) * ndim
            # A batch is of one array: its first chunk finds the array (checking the store);
            # the others, of the same store and array prefix, need only their keys parsed.
            first, rectilinear = None, False
            for byte_getter, chunk_spec, chunk_sel, out_sel, *_ in batch:
                parsed = self._keys.get(byte_getter.path) if first is not None else None
                if parsed is not None and parsed[0] == first[1] and byte_getter.store is first[0]:
                    coords = parsed[1]
                else:
                    array, coords, entry = self._native_entry(byte_getter)
                    parsed = self._keys.get(byte_getter.path)
                    first = None if parsed is None else (byte_getter.store, parsed[0])
                    rectilinear = array.rectilinear
                if rectilinear and not array.has_chunk(coords):
                    array, coords, entry = await self._grown_entry(byte_getter, coords)
                    first = None
                chunks.append(coords)
                if not drop_axes and len(coords) == ndim and _basic(chunk_sel, slices) and _basic(out_sel, slices):
                    # Slices go to Rust as they are (resolved there against the chunk's and
                    # the output's shapes).
                    requests.append(("o", coords, chunk_sel, out_sel))
                else:
                    requests.append(_request(coords, chunk_spec.shape, chunk_sel, out_sel, drop_axes, out_nd.shape))
            coalescer = self._coalescers[entry]
            if array.element_size == 0:
                # Strings, vlen bytes: Rust plans, reads (whole stored chunks, one batch) and
                # decodes; the elements come back as Python objects (C order) and numpy
                # converts them to the output's dtype.
                requests = [(r[0], 0, *r[1:]) for r in requests]
                shapes = [list(out_nd.shape)]
                if coalescer.store is None:
                    lists, gone = await asyncio.to_thread(array.read_variable_chunk_requests, requests, shapes)
                else:
                    loop, spec = asyncio.get_running_loop(), batch[0][1]

                    def fetch(asks: list[tuple], kind: str) -> list[Any]:
                        return asyncio.run_coroutine_threadsafe(_fetch_all(coalescer.store, asks, spec, kind), loop).result()

                    lists, gone = await asyncio.to_thread(array.read_variable_chunk_requests_fetched, requests, shapes, fetch)
                    STATS["store_fetch_calls"] += 1
                values = np.empty(len(lists[0]), dtype=object)
                values[:] = lists[0]
                out_nd[...] = values.reshape(out_nd.shape)
                STATS["native_reads"] += 1
                return _statuses(chunks, {tuple(c) for c in gone})
            if out_nd.dtype.hasobject:
                raise _Unsupported(f"object dtype {out_nd.dtype}")
            # Rust fills C-contiguous native-endian memory; anything else (Fortran order, a
            # strided `out=`, big-endian) is filled through a temporary and copied.
            # So is an `out=` of another dtype (zarr casts into it).
            want = self._element_dtype(batch[0][1], out_nd.dtype)
            direct = out_nd.dtype == want and out_nd.flags.c_contiguous
            target = out_nd if direct else np.empty(out_nd.shape, dtype=want)
            raw = target.reshape(-1).view(np.uint8)
            # The decoded size of the chunks read (a lone small read may be served on the loop).
            nbytes = array.element_size * sum(math.prod(b[1].shape) for b in batch) if len(batch) <= 4 else -1
            missing = await coalescer.submit(requests, list(target.shape), raw, batch[0][1], nbytes)
            if not direct:
                assign(out_nd, target)
            STATS["native_reads"] += 1
            return _statuses(chunks, missing)
        except _Unsupported as why:
            self._fallback(str(why))
            STATS["fallback_reads"] += 1
            return await self._inner.read(batch, out, drop_axes)

    def _element_dtype(self, chunk_spec: Any, fallback: np.dtype) -> np.dtype:
        """The element type Rust reads and writes: a raw type's stored layout, else the array's
        type in native byte order."""
        return self._raw if self._raw is not None else _native_dtype(chunk_spec, fallback)

    async def write(self, batch_info: Iterable[tuple], value: Any, drop_axes: tuple[int, ...] = ()) -> None:
        """Write a batch (any selection zarr-python produces: regions with steps, integer
        arrays, masks, points) in one Rust call: stored chunks the batch covers only in part are
        read, the new values scattered in, and every touched chunk encoded in parallel; a
        LocalStore is written by zuring (atomic file replacement), any other store through its
        own async API. All-fill chunks are deleted unless ``write_empty_chunks`` is on."""
        batch = list(batch_info)
        if not batch:
            return
        try:
            data = value.as_ndarray_like()
            if not isinstance(data, np.ndarray):
                raise _Unsupported("value is not a numpy array")
            requests, partial, store_empty, entry, array = [], [], False, None, None
            setters = {}
            ndim = len(self._metadata.shape) if self._metadata is not None else -1
            slices = (slice,) * ndim  # (unused when ndim is -1: `plain` is then false)
            # A value of the selection's full shape (nothing to broadcast): basic selections
            # go to Rust as slices, as in `read`.
            plain = not drop_axes and data.ndim == ndim and 1 not in data.shape
            for byte_setter, chunk_spec, chunk_sel, out_sel, *rest in batch:
                array, coords, entry = self._native_entry(byte_setter)
                if array.rectilinear and not array.has_chunk(coords):
                    array, coords, entry = await self._grown_entry(byte_setter, coords)
                setters[coords] = byte_setter
                # zarr says which chunks the write covers whole (the fifth item): no old bytes.
                # A shard counts as covered only when all of it is (zarr counts the in-bounds
                # part): what an edge shard holds past the array's edge is kept, as zarr does.
                if not (rest and rest[0]) or (array.shards is not None and not _covers(chunk_sel, chunk_spec.shape)):
                    partial.append(list(coords))
                store_empty = bool(chunk_spec.config.write_empty_chunks)
                if plain and _basic(chunk_sel, slices) and _basic(out_sel, slices):
                    requests.append(("o", 0, coords, chunk_sel, out_sel))
                    continue
                # numpy broadcasting: missing leading axes, and axes of length 1, repeat (Rust
                # ignores the positions along a length-1 axis; they only need the right count).
                out_ndim = len(out_sel) if isinstance(out_sel, tuple) else 1
                if data.ndim < out_ndim:
                    data = data.reshape((1,) * (out_ndim - data.ndim) + data.shape)
                nominal = tuple(1 << 62 if n == 1 else n for n in data.shape)
                request = _request(coords, chunk_spec.shape, chunk_sel, out_sel, drop_axes, nominal)
                requests.append((request[0], 0, *request[1:]))
            shape = list(data.shape)
            store = self._coalescers[entry].store
            if array.element_size == 0:
                # Strings, vlen bytes: the elements go to Rust as str / bytes objects.
                payload = data.reshape(-1).tolist()
                write_local, encode = array.write_variable_chunk_requests, array.encode_variable_chunk_requests
            else:
                if data.dtype.hasobject:
                    raise _Unsupported(f"object dtype {data.dtype}")
                data = as_dtype(data, self._element_dtype(batch[0][1], data.dtype))
                payload = data.reshape(-1).view(np.uint8)
                write_local, encode = array.write_chunk_requests, array.encode_chunk_requests
            if store is None:
                _check_writable(batch[0][0].store)
                await asyncio.to_thread(write_local, requests, payload, shape, partial, store_empty)
                STATS["native_writes"] += 1
            else:
                merged = lambda existing: encode(requests, payload, shape, existing, store_empty)  # noqa: E731
                await _write_through_store(merged, setters, batch[0][1].prototype, partial)
                STATS["store_writes"] += 1
        except _Unsupported as why:
            self._fallback(str(why))
            STATS["fallback_writes"] += 1
            # zarr's pipeline reads and replaces what a write covers in part as zuring's does:
            # its writes into the same stored chunks take turns too (a shard's inner chunks,
            # written by zarr's sharding codec into the shard in memory, need not).
            stored = [s for s, *_ in batch if hasattr(s, "store") and isinstance(getattr(s, "path", None), str)]
            async with _taking(stored):
                await self._inner.write(batch, value, drop_axes)


def _statuses(chunks: list[tuple[int, ...]], missing: set[tuple[int, ...]]) -> Any:
    """What ``read`` returns: nothing on zarr 3.1; on zarr >= 3.2 one status per chunk of the
    batch (by its coordinates), as the read found it (Rust reports the stored chunks it found
    missing: nothing is looked up again)."""
    if not _NEEDS_RESULTS:
        return None
    return tuple({"status": "missing" if c in missing else "present"} for c in chunks)


def _native_dtype(chunk_spec: Any, fallback: np.dtype) -> np.dtype:
    """The array's element type, native byte order (what Rust reads and writes)."""
    try:
        dtype = np.dtype(chunk_spec.dtype.to_native_dtype())
    except AttributeError:  # pragma: no cover - an ArraySpec without a zarr data type
        dtype = np.dtype(fallback)
    return dtype.newbyteorder("=")


def _check_writable(store: Any) -> None:
    """Refuse as the store itself would (zarr opened read-only: ``mode="r"``)."""
    check = getattr(store, "_check_writable", None)
    if check is not None:
        check()
    elif getattr(store, "read_only", False):
        raise ValueError("store was opened in read-only mode and does not support writing")


# The stored chunks that writes through a store's own API hold, in this process: key -> the
# future (a thread-safe one) set when the write holding it is done. Writes from any thread and
# any event loop take turns (threads that each run a loop of their own write into one shard).
_TAKEN: dict[tuple[str, str], concurrent.futures.Future] = {}
_TAKEN_LOCK = threading.Lock()


def _forget_taken() -> None:
    """In a forked child: the parent's writes are not the child's to wait for."""
    global _TAKEN_LOCK
    _TAKEN.clear()
    _TAKEN_LOCK = threading.Lock()


os.register_at_fork(after_in_child=_forget_taken)


def _wake_on(loop: asyncio.AbstractEventLoop, held: list[concurrent.futures.Future]) -> asyncio.Future:
    """A future of ``loop`` done when any of ``held`` is (set from whichever thread ends a write;
    the writes' own futures are never cancelled from here)."""
    waiter = loop.create_future()

    def settle() -> None:
        if not waiter.done():
            waiter.set_result(None)

    def wake(_: concurrent.futures.Future) -> None:
        with contextlib.suppress(RuntimeError):  # the loop has closed: nobody waits
            loop.call_soon_threadsafe(settle)

    for future in held:
        future.add_done_callback(wake)
    return waiter


@contextlib.asynccontextmanager
async def _taking(setters: Iterable[Any]) -> AsyncIterator[None]:
    """Hold the stored chunks of ``setters`` (byte setters: a store and a key) from other writes
    through this pipeline in this process (through a store's API, or falling back to zarr's
    pipeline), waiting while any is held. A write reads what it covers in part, merges and
    replaces it: two at once into one chunk or shard would each start from what was stored and
    the later would drop the other's values. Taken all at once, so writes never wait on each
    other in a cycle; as zuring's Rust writes do for LocalStore."""
    loop = asyncio.get_running_loop()
    keys = {(str(s.store), s.path) for s in setters}
    done: concurrent.futures.Future = concurrent.futures.Future()
    while True:
        with _TAKEN_LOCK:
            held = [_TAKEN[k] for k in keys if k in _TAKEN]
            if not held:
                for k in keys:
                    _TAKEN[k] = done
                break
        await _wake_on(loop, held)
    try:
        yield
    finally:
        with _TAKEN_LOCK:
            for k in keys:
                if _TAKEN.get(k) is done:
                    del _TAKEN[k]
        done.set_result(None)


async def _write_through_store(encode: Any, setters: dict, prototype: Any, partial: list[list[int]]) -> None:
    """Read-modify-write through a store's async API (``setters``: each stored chunk's byte
    setter by coordinates): fetch the stored chunks the write covers in part, merge and encode in
    Rust (``encode(existing)``, on a worker thread), then set (or delete, when all fill) every
    touched chunk; other writes through zuring into the same chunks wait meanwhile."""

    async def old(coords: list[int]) -> tuple:
        buf = await setters[tuple(coords)].get(prototype)
        return coords, None if buf is None else buf.as_numpy_array()

    async def put(coords: list[int], data: bytes | None) -> None:
        setter = setters[tuple(coords)]
        if data is None:
            await setter.delete()
        else:
            await setter.set(prototype.buffer.from_bytes(data))

    async with _taking(setters.values()):
        existing = list(await asyncio.gather(*(old(c) for c in partial)))
        encoded = await asyncio.to_thread(encode, existing)
        await asyncio.gather(*(put(c, d) for c, d in encoded))


def _register() -> None:
    from zarr.registry import register_pipeline

    register_pipeline(ZuringCodecPipeline)


_register()
