"""zarr-python with zuring's CodecPipeline gives what its default pipeline gives, and the Rust
path really runs."""

import multiprocessing as mp
import pickle
import warnings

import numpy as np
import pytest
import zarr
from zarr.codecs import BloscCodec, GzipCodec, ZstdCodec

import zuring
from zuring import pipeline as zp

ZURING = {"codec_pipeline.path": "zuring.ZuringCodecPipeline"}
DEFAULT = {"codec_pipeline.path": "zarr.core.codec_pipeline.BatchedCodecPipeline"}

LAYOUTS = [
    # shape, chunks, shards, dtype, compressors, fill
    ((20, 33), (6, 7), None, "uint16", [ZstdCodec(level=1)], 3),
    ((20, 33), (5, 4), (10, 12), "float32", [BloscCodec(cname="lz4")], float("nan")),
    ((9, 8, 7), (2, 3, 4), (4, 6, 4), "int64", [GzipCodec(level=1)], -1),
    ((50,), (7,), (21,), "complex64", None, 0),
    ((6, 5), (4, 4), None, "bool", [ZstdCodec(level=1)], True),
]

SELECTIONS = [
    (slice(None),),
    (slice(2, 17), slice(3, 30)),
    (3, slice(None)),
    (slice(None, None, 3), slice(1, None, 2)),
    (-1, -2),
    (Ellipsis, 0),
]


def make(path, shape, chunks, shards, dtype, compressors, fill, zarr_format=3):
    rng = np.random.default_rng(1)
    values = (rng.standard_normal(shape) * 100).astype(dtype)
    with zarr.config.set(DEFAULT):
        kwargs = dict(store=str(path), shape=shape, dtype=dtype, chunks=chunks, fill_value=fill, zarr_format=zarr_format)
        if zarr_format == 3:
            kwargs.update(shards=shards, compressors=compressors)
        a = zarr.create_array(**kwargs)
        # Leave the last rows unwritten (fill).
        a[: max(1, shape[0] - 2)] = values[: max(1, shape[0] - 2)]
        return a[...]


def both(path, fn):
    with zarr.config.set(DEFAULT):
        expected = fn(zarr.open_array(str(path), mode="r"))
    with zarr.config.set(ZURING):
        arr = zarr.open_array(str(path), mode="r")
        assert isinstance(arr._async_array.codec_pipeline, zuring.ZuringCodecPipeline)
        got = fn(arr)
    return got, expected


@pytest.mark.parametrize("layout", LAYOUTS, ids=lambda l: f"{l[3]}-{'sharded' if l[2] else 'chunked'}-{len(l[0])}d")
def test_reads_equal_default_pipeline(tmp_path, layout):
    path = tmp_path / "a.zarr"
    values = make(path, *layout)
    ndim = len(layout[0])
    before = zp.STATS["native_reads"]
    for sel in SELECTIONS:
        sel = sel[:ndim] if Ellipsis not in sel else sel
        if ndim == 1 and Ellipsis in sel:
            continue
        got, expected = both(path, lambda a: a[sel])
        np.testing.assert_array_equal(got, expected)
    rng = np.random.default_rng(0)
    idx = tuple(rng.integers(0, n, 4) for n in layout[0])
    got, expected = both(path, lambda a: a.oindex[idx])
    np.testing.assert_array_equal(got, expected)
    got, expected = both(path, lambda a: a.vindex[idx])
    np.testing.assert_array_equal(got, expected)
    mask = rng.random(layout[0]) < 0.3
    got, expected = both(path, lambda a: a.vindex[mask])
    np.testing.assert_array_equal(got, expected)
    got, expected = both(path, lambda a: a.blocks[1])
    np.testing.assert_array_equal(got, expected)
    np.testing.assert_array_equal(both(path, lambda a: a[...])[0], values)
    assert zp.STATS["native_reads"] > before, "reads went through Rust"


@pytest.mark.parametrize("layout", LAYOUTS[:3], ids=["chunked", "sharded", "sharded-3d"])
def test_writes_equal_default_pipeline(tmp_path, layout):
    shape, chunks, shards, dtype, compressors, fill = layout
    for name, config in (("default", DEFAULT), ("zuring", ZURING)):
        with zarr.config.set(config):
            a = zarr.create_array(store=str(tmp_path / name), shape=shape, dtype=dtype, chunks=chunks, shards=shards, compressors=compressors, fill_value=fill)
            a[...] = np.arange(np.prod(shape)).reshape(shape).astype(dtype)
            a[1:4, 2:5] = 7
            a[2] = 9
            a[-1] = fill  # back to fill: chunks may be dropped
    before = zp.STATS["native_writes"]
    with zarr.config.set(DEFAULT):
        ref = zarr.open_array(str(tmp_path / "default"), mode="r")[...]
        ours = zarr.open_array(str(tmp_path / "zuring"), mode="r")[...]
    np.testing.assert_array_equal(ours, ref)
    with zarr.config.set(ZURING):
        a = zarr.open_array(str(tmp_path / "zuring"), mode="r+")
        a[0:2, 0:3] = 5
    assert zp.STATS["native_writes"] > before, "writes went through Rust"
    with zarr.config.set(DEFAULT):
        assert (zarr.open_array(str(tmp_path / "zuring"), mode="r")[0:2, 0:3] == 5).all()


def test_v2_arrays(tmp_path):
    path = tmp_path / "v2.zarr"
    values = make(path, (13, 11), (4, 5), None, "int32", None, -7, zarr_format=2)
    got, expected = both(path, lambda a: a[2:11, ::2])
    np.testing.assert_array_equal(got, expected)
    np.testing.assert_array_equal(both(path, lambda a: a[...])[0], values)


def test_other_stores_fall_back_or_raise_when_strict():
    store = zarr.storage.MemoryStore()
    with zarr.config.set(ZURING):
        a = zarr.create_array(store=store, shape=(10,), dtype="int32", chunks=(3,))
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            a[...] = np.arange(10)
            np.testing.assert_array_equal(a[...], np.arange(10))
    with zarr.config.set({**ZURING, "codec_pipeline.strict": True}):
        b = zarr.open_array(store=store, mode="r")
        with pytest.raises(zuring.UnsupportedError):
            b[...]


def test_pickles(tmp_path):
    path = tmp_path / "p.zarr"
    make(path, (10, 10), (3, 3), (6, 6), "uint8", None, 0)
    with zarr.config.set(ZURING):
        a = zarr.open_array(str(path), mode="r")
        a[...]
        pipeline = pickle.loads(pickle.dumps(a._async_array.codec_pipeline))
        assert isinstance(pipeline, zuring.ZuringCodecPipeline)
        b = pickle.loads(pickle.dumps(a))
        np.testing.assert_array_equal(b[...], a[...])


def _child(path, q):
    with zarr.config.set(ZURING):
        q.put(int(zarr.open_array(path, mode="r")[...].sum()))


def test_forked_child_reads(tmp_path):
    path = tmp_path / "f.zarr"
    values = make(path, (30, 30), (7, 7), (14, 14), "int64", [ZstdCodec(level=1)], 0)
    with zarr.config.set(ZURING):
        assert int(zarr.open_array(str(path), mode="r")[...].sum()) == int(values.sum())
    ctx = mp.get_context("fork")
    q = ctx.Queue()
    procs = [ctx.Process(target=_child, args=(str(path), q)) for _ in range(2)]
    for p in procs:
        p.start()
    got = [q.get(timeout=60) for _ in procs]
    for p in procs:
        p.join(timeout=60)
        assert p.exitcode == 0
    assert got == [int(values.sum())] * 2


def test_selected_by_environment_variable(tmp_path):
    import os
    import subprocess
    import sys

    path = tmp_path / "e.zarr"
    make(path, (8, 8), (3, 3), None, "int16", None, 0)
    code = (
        "import zarr, zuring.pipeline as zp; "
        f"a = zarr.open_array({str(path)!r}, mode='r'); a[...]; "
        "print(type(a._async_array.codec_pipeline).__name__, zp.STATS['native_reads'])"
    )
    env = {**os.environ, "ZARR_CODEC_PIPELINE__PATH": "zuring.ZuringCodecPipeline"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    name, reads = out.stdout.split()
    assert name == "ZuringCodecPipeline" and int(reads) >= 1


def test_concurrent_reads_coalesce_and_errors_stay_apart(tmp_path):
    import asyncio

    path = tmp_path / "c.zarr"
    values = make(path, (40, 40), (5, 5), (10, 10), "int32", [ZstdCodec(level=1, checksum=True)], 0)
    with zarr.config.set(ZURING):
        a = zarr.open_array(str(path), mode="r")._async_array
        sels = [(slice(i, i + 7), slice(3, 30)) for i in range(0, 30, 3)]

        async def many():
            return await asyncio.gather(*[a.getitem(s) for s in sels], return_exceptions=True)

        calls = zp.STATS["native_calls"]
        results = asyncio.run(many())
        assert zp.STATS["native_calls"] - calls < len(sels), "concurrent reads were coalesced"
        for s, r in zip(sels, results):
            np.testing.assert_array_equal(r, values[s])
        # Corrupt one shard's chunk bytes: only the reads touching it fail.
        shard = path / "c" / "3" / "0"
        data = bytearray(shard.read_bytes())
        data[20] ^= 0xFF
        shard.write_bytes(bytes(data))
        results = asyncio.run(many())
    # Byte 20 lies in the shard's first inner chunk: rows 30..35, columns 0..5.
    failed = [s for s, r in zip(sels, results) if isinstance(r, Exception)]
    assert failed == [s for s in sels if s[0].stop > 30]
    for s, r in zip(sels, results):
        if isinstance(r, Exception):
            assert isinstance(r, zuring.CorruptDataError) and "c/3/0" in str(r), r
        else:
            np.testing.assert_array_equal(r, values[s])
