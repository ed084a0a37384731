"""Every negative fixture gives its specific error (type, and a message naming the file, key,
entry or field), never a panic or a partial result, and the process stays usable."""

import json
import sys
from pathlib import Path

import numpy as np
import pytest

import zuring

sys.path.insert(0, str(Path(__file__).parents[1] / "fixtures"))
import negative as neg  # noqa: E402

MAX = 2**64 - 1


def read_all(path):
    return zuring.open_array(path)[...]


@pytest.mark.parametrize(
    "name,change,match",
    [
        ("entry-past-eof", lambda e: e[1].__setitem__(0, 1 << 30), r"entry 1 .*past the end"),
        ("offset-overflow", lambda e: e[2].__setitem__(0, MAX - 2), r"entry 2 .*overflows"),
        ("half-missing", lambda e: e[3].__setitem__(1, MAX), r"entry 3 .*only one of offset and nbytes"),
    ],
)
def test_corrupt_index_entries(tmp_path, name, change, match):
    shard = neg.sharded(tmp_path / name)
    neg.rewrite_index(shard, change)
    with pytest.raises(zuring.CorruptDataError, match=match) as err:
        read_all(tmp_path / name)
    assert "c/0/0" in str(err.value)


test_corrupt_index_entries.rows = ["E8", "rule 3"]


def test_bad_index_crc_and_short_file(tmp_path):
    shard = neg.sharded(tmp_path / "crc")
    data = bytearray(shard.read_bytes())
    data[-8] ^= 1
    shard.write_bytes(bytes(data))
    with pytest.raises(zuring.CorruptDataError, match="c/0/0"):
        read_all(tmp_path / "crc")
    shard = neg.sharded(tmp_path / "short")
    shard.write_bytes(shard.read_bytes()[:30])
    with pytest.raises(zuring.CorruptDataError, match="shorter than its"):
        read_all(tmp_path / "short")


test_bad_index_crc_and_short_file.rows = ["E8", "C5", "rule 4"]


def test_bad_chunk_crc(tmp_path):
    codecs = [{"name": "bytes", "configuration": {"endian": "little"}}, {"name": "crc32c"}]
    a = zuring.create_array(tmp_path / "c", neg.meta(codecs, shape=(4, 4), chunks=(2, 2)))
    a[...] = np.arange(16, dtype="int32").reshape(4, 4)
    chunk = tmp_path / "c" / "c" / "1" / "0"
    data = bytearray(chunk.read_bytes())
    data[0] ^= 1
    chunk.write_bytes(bytes(data))
    with pytest.raises(zuring.CorruptDataError, match="c/1/0"):
        a[...]
    np.testing.assert_array_equal(a[0:2, :], np.arange(8, dtype="int32").reshape(2, 4))


test_bad_chunk_crc.rows = ["C5"]


@pytest.mark.parametrize("codec", [
    {"name": "zstd", "configuration": {"level": 1, "checksum": False}},
    {"name": "blosc", "configuration": {"cname": "lz4", "clevel": 5, "shuffle": "shuffle", "typesize": 4, "blocksize": 0}},
    {"name": "gzip", "configuration": {"level": 5}},
])
def test_truncated_chunks(tmp_path, codec):
    codecs = [{"name": "bytes", "configuration": {"endian": "little"}}, codec]
    a = zuring.create_array(tmp_path / "t", neg.meta(codecs, shape=(64, 64), chunks=(64, 64)))
    a[...] = np.random.default_rng(0).integers(0, 1000, (64, 64), dtype="int32")
    chunk = tmp_path / "t" / "c" / "0" / "0"
    chunk.write_bytes(chunk.read_bytes()[: len(chunk.read_bytes()) // 2])
    with pytest.raises(zuring.CorruptDataError, match="c/0/0"):
        a[...]


test_truncated_chunks.rows = ["C3", "C4", "C6"]


@pytest.mark.parametrize(
    "change,error,match",
    [
        (lambda m: m.pop("fill_value"), ValueError, '"fill_value" is missing'),
        (lambda m: m.pop("shape"), ValueError, '"shape" is missing'),
        (lambda m: m.__setitem__("codecs", []), ValueError, '"codecs" must be a non-empty array'),
        (lambda m: m.__setitem__("fill_value", "not a number"), ValueError, "fill"),
        (lambda m: m.__setitem__("new_extension", {"must_understand": True}), zuring.UnsupportedError, "new_extension"),
        (lambda m: m["codecs"].append({"name": "no-such-codec"}), zuring.UnsupportedError, "no-such-codec"),
        # A misspelled member of the regular grid: malformed (zarrs calls the grid unsupported).
        (lambda m: m["chunk_grid"]["configuration"].update(chunk_shap=m["chunk_grid"]["configuration"].pop("chunk_shape")), ValueError, r"chunk_grid \(regular\): configuration: unknown field `chunk_shap`"),
    ],
)
def test_bad_metadata(tmp_path, change, error, match):
    path = tmp_path / "m"
    a = zuring.create_array(path, neg.meta([{"name": "bytes", "configuration": {"endian": "little"}}], dtype="float32"))
    a[...] = 1.0
    neg.broken_metadata(path, change)
    with pytest.raises(error, match=match):
        zuring.open_array(path)


test_bad_metadata.rows = ["M1", "M6", "rule 1", "rule 11", "rule 13"]


def test_unknown_field_ignored_when_must_understand_false(tmp_path):
    path = tmp_path / "ok"
    a = zuring.create_array(path, neg.meta([{"name": "bytes", "configuration": {"endian": "little"}}]))
    a[...] = 3
    neg.broken_metadata(path, lambda m: m.__setitem__("extra", {"must_understand": False, "x": 1}))
    assert (zuring.open_array(path)[...] == 3).all()


test_unknown_field_ignored_when_must_understand_false.rows = ["M6", "rule 11"]
