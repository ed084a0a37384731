"""zuring writes each feature it writes; zarr-python's default pipeline and tensorstore read
the result back identically, and the metadata round-trips through zarr-python unchanged."""

import json

import numpy as np
import pytest
import zarr

import zuring

DEFAULT = {"codec_pipeline.path": "zarr.core.codec_pipeline.BatchedCodecPipeline"}
LE = {"name": "bytes", "configuration": {"endian": "little"}}
BE = {"name": "bytes", "configuration": {"endian": "big"}}


def meta(dtype, codecs, shape=(11, 9), chunks=(4, 4), fill=0, key=None, **extra):
    m = {
        "zarr_format": 3, "node_type": "array", "shape": list(shape), "data_type": dtype,
        "chunk_grid": {"name": "regular", "configuration": {"chunk_shape": list(chunks)}},
        "chunk_key_encoding": key or {"name": "default"}, "fill_value": fill, "codecs": codecs,
    }
    m.update(extra)
    return m


def shard(inner, location="end", index=None):
    return [{"name": "sharding_indexed", "configuration": {"chunk_shape": [2, 3], "codecs": inner,
             "index_codecs": index or [LE, {"name": "crc32c"}], "index_location": location}}]


CASES = {
    "bytes-le": (["C1"], meta("int32", [LE])),
    "bytes-be-gzip": (["C1", "C3"], meta("int64", [BE, {"name": "gzip", "configuration": {"level": 6}}])),
    "zstd-crc32c": (["C5", "C6"], meta("float32", [LE, {"name": "zstd", "configuration": {"level": 3, "checksum": True}}, {"name": "crc32c"}], fill="NaN")),
    "blosc": (["C4"], meta("uint16", [LE, {"name": "blosc", "configuration": {"cname": "zstd", "clevel": 5, "shuffle": "bitshuffle", "typesize": 2, "blocksize": 0}}])),
    "transpose": (["C2"], meta("int16", [{"name": "transpose", "configuration": {"order": [1, 0]}}, LE])),
    "sharded-end": (["C7"], meta("int32", shard([LE, {"name": "zstd", "configuration": {"level": 1, "checksum": False}}]), chunks=(4, 6))),
    "sharded-start": (["C7"], meta("int32", shard([LE], "start"), chunks=(4, 6))),
    "sharded-be-index": (["C7", "E6"], meta("int32", shard([BE], "end", [BE, {"name": "crc32c"}]), chunks=(4, 6))),
    "key-dot": (["K2"], meta("uint8", [{"name": "bytes"}], key={"name": "default", "configuration": {"separator": "."}})),
    "key-v2": (["K3"], meta("uint8", [{"name": "bytes"}], key={"name": "v2", "configuration": {"separator": "."}})),
    "complex-fill": (["D6"], meta("complex128", [LE], fill=[1.0, -1.0])),
    "attrs-dims": (["M3", "M4"], meta("int32", [LE], attributes={"a": [1, {"b": None}]}, dimension_names=["y", "x"])),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_zuring_writes_others_read(tmp_path, name):
    rows, m = CASES[name]
    path = tmp_path / name
    a = zuring.create_array(path, m)
    rng = np.random.default_rng(1)
    values = (rng.standard_normal(a.shape) * 50).astype(a.dtype) if a.dtype.kind in "fc" else rng.integers(0, 100, a.shape).astype(a.dtype)
    values[-3:] = a.fill_value  # some chunks all fill: not stored
    a[...] = values
    a[2:7, 1:5] = values[2:7, 1:5] + 1
    values[2:7, 1:5] += 1
    with zarr.config.set(DEFAULT):
        z = zarr.open_array(str(path), mode="r")
        np.testing.assert_array_equal(z[...], values)
        # Metadata round-trips: zarr-python reads exactly what zuring wrote.
        written = json.loads((path / "zarr.json").read_text())
        assert written == m
        assert z.metadata.to_dict()["codecs"] is not None
    import tensorstore as ts

    t = ts.open({"driver": "zarr3", "kvstore": {"driver": "file", "path": str(path)}}).result()
    np.testing.assert_array_equal(t.read().result(), values)


def test_empty_chunks_are_not_written_and_deleted_on_overwrite(tmp_path):
    a = zuring.create_array(tmp_path / "e", meta("int32", [LE], shape=(8, 8), chunks=(4, 4)))
    a[...] = 0
    assert not (tmp_path / "e" / "c").exists()
    a[0:4, 0:4] = 5
    assert (tmp_path / "e" / "c" / "0" / "0").exists()
    a[0:4, 0:4] = 0
    assert not (tmp_path / "e" / "c" / "0" / "0").exists()


test_empty_chunks_are_not_written_and_deleted_on_overwrite.rows = ["E10"]


def test_partial_write_into_existing_shard(tmp_path):
    path = tmp_path / "p"
    a = zuring.create_array(path, meta("int32", shard([LE]), shape=(8, 12), chunks=(4, 6)))
    a[...] = np.arange(96, dtype="int32").reshape(8, 12)
    b = zuring.open_array(path)
    b[1:3, 2:5] = -1
    expected = np.arange(96, dtype="int32").reshape(8, 12)
    expected[1:3, 2:5] = -1
    np.testing.assert_array_equal(zuring.open_array(path)[...], expected)
    with zarr.config.set(DEFAULT):
        np.testing.assert_array_equal(zarr.open_array(str(path), mode="r")[...], expected)


test_partial_write_into_existing_shard.rows = ["E11", "E13"]


def test_partial_write_over_a_corrupt_inner_chunk(tmp_path):
    """A write covering a corrupt inner chunk in part needs its old values: it fails naming the
    shard and the inner chunk, and the shard file is left as it was; a write covering that inner
    chunk whole needs nothing old and replaces it."""
    path = tmp_path / "p"
    zstd = {"name": "zstd", "configuration": {"level": 1, "checksum": False}}
    a = zuring.create_array(path, meta("int32", shard([LE, zstd]), shape=(4, 6), chunks=(4, 6)))
    expected = np.arange(24, dtype="int32").reshape(4, 6)
    a[...] = expected
    shard_file = path / "c" / "0" / "0"
    data = bytearray(shard_file.read_bytes())
    data[0] ^= 0xFF  # inner chunk (0, 0) is first in the shard: its zstd frame's magic
    shard_file.write_bytes(bytes(data))
    with pytest.raises(zuring.CorruptDataError, match=r"c/0/0.*\[0, 0\]"):
        zuring.open_array(path)[0:1, 0:1] = -1
    assert shard_file.read_bytes() == bytes(data)
    # Inner chunk (0, 0) is rows 0-1, columns 0-2: written whole, its corrupt bytes are not read.
    b = zuring.open_array(path)
    b[0:2, 0:3] = -2
    expected[0:2, 0:3] = -2
    np.testing.assert_array_equal(zuring.open_array(path)[...], expected)
    with zarr.config.set(DEFAULT):
        np.testing.assert_array_equal(zarr.open_array(str(path), mode="r")[...], expected)


test_partial_write_over_a_corrupt_inner_chunk.rows = ["E11", "C7", "C6"]
