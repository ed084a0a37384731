"""Rows of the matrix beyond the generated fixtures: strings, consolidated metadata, storage
transformers, 3.1 short-hand names, chunk size 0, huge shard indexes, and the features zuring does
not support, with the error users get."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import zarr

import zuring

DEFAULT = {"codec_pipeline.path": "zarr.core.codec_pipeline.BatchedCodecPipeline"}
LE = {"name": "bytes", "configuration": {"endian": "little"}}


def meta(**kw):
    m = {"zarr_format": 3, "node_type": "array", "shape": [6], "data_type": "int32",
         "chunk_grid": {"name": "regular", "configuration": {"chunk_shape": [4]}},
         "chunk_key_encoding": {"name": "default"}, "fill_value": 0, "codecs": [LE]}
    m.update(kw)
    return m


def write_meta(path, m):
    path.mkdir(parents=True, exist_ok=True)
    (path / "zarr.json").write_text(json.dumps(m))


def test_strings_written_by_zarr(tmp_path):
    values = np.array(["", "a", "ünïcode", "日本語", "x" * 100, "end"], dtype=object)
    with zarr.config.set(DEFAULT):
        z = zarr.create_array(store=str(tmp_path / "s"), shape=(6,), dtype=str, chunks=(4,), shards=None)
        z[...] = values
    a = zuring.open_array(tmp_path / "s")
    assert list(a[...]) == list(values)
    assert list(a[2:5]) == list(values[2:5])


test_strings_written_by_zarr.rows = ["D8", "C8"]


def test_strings_inside_sharding(tmp_path):
    with zarr.config.set(DEFAULT):
        z = zarr.create_array(store=str(tmp_path / "s"), shape=(9,), dtype=str, chunks=(2,), shards=(4,))
        z[...] = np.array([str(i) * i for i in range(9)], dtype=object)
    assert list(zuring.open_array(tmp_path / "s")[...]) == [str(i) * i for i in range(9)]


test_strings_inside_sharding.rows = ["C8"]


def test_vlen_bytes_written_by_zarr(tmp_path):
    values = np.array([b"", b"\x00\x01", b"zarr", b"x" * 50, b"\xff", b"end"], dtype=object)
    with zarr.config.set(DEFAULT):
        from zarr.core.dtype import VariableLengthBytes

        z = zarr.create_array(store=str(tmp_path / "b"), shape=(6,), dtype=VariableLengthBytes(), chunks=(4,))
        z[...] = values
    a = zuring.open_array(tmp_path / "b")
    assert list(a[...]) == list(values)
    assert list(a[1:3]) == list(values[1:3])


test_vlen_bytes_written_by_zarr.rows = ["D9", "C9"]


def test_raw_bits_read_as_void(tmp_path):
    write_meta(tmp_path / "r", meta(data_type="r16", fill_value=[1, 2]))
    a = zuring.open_array(tmp_path / "r")
    assert a.dtype == np.dtype("V2")
    assert a[...].tobytes() == bytes([1, 2]) * 6


test_raw_bits_read_as_void.rows = ["D7"]


@pytest.mark.parametrize("dtype,fill,stored", [("float8_e4m3", "NaN", b"\x7c"), ("int4", -2, b"\xfe"), ("bfloat16", "-Infinity", b"\x80\xff")])
def test_machine_learning_types_read_as_ml_dtypes(tmp_path, dtype, fill, stored):
    """zarr-extensions' bfloat16, 8-bit floats and 4-bit integers: ml_dtypes' numpy types
    (raw elements of their size without ml_dtypes), fill values as the extensions define."""
    ml_dtypes = pytest.importorskip("ml_dtypes")
    write_meta(tmp_path / "x", meta(data_type=dtype, fill_value=fill))
    a = zuring.open_array(tmp_path / "x")
    assert a.dtype == np.dtype(getattr(ml_dtypes, dtype)) and a.shape == (6,)
    assert a[...].tobytes() == stored * 6
    want = {"NaN": np.nan, "-Infinity": -np.inf}.get(fill, fill)
    np.testing.assert_array_equal(a[...].astype(np.float64), np.full(6, want))


def test_struct_and_fixed_length_types(tmp_path):
    """zarr 3.4's `struct` (fields stored in the bytes codec's order, a JSON fill value per field,
    NaN included) and fixed-length bytes, read (and written) by the native API as their stored
    element layout, and zarr's fixed_length_utf32 as strings."""
    fields = {"name": "struct", "configuration": {"fields": [{"name": "a", "data_type": "int16"}, {"name": "b", "data_type": "float32"}]}}
    for endian, order in (("little", "<"), ("big", ">")):
        path = tmp_path / f"struct-{endian}"
        codecs = [{"name": "bytes", "configuration": {"endian": endian}}]
        write_meta(path, meta(data_type=fields, fill_value={"a": -1, "b": "NaN"}, codecs=codecs))
        dtype = np.dtype([("a", f"{order}i2"), ("b", f"{order}f4")])
        chunk = np.array([(1, 0.5), (2, 1.5), (3, 2.5), (4, -0.0)], dtype=dtype)
        (path / "c").mkdir()
        (path / "c" / "0").write_bytes(chunk.tobytes())
        a = zuring.open_array(path)
        got = a[...]
        assert got.dtype.names == ("a", "b") and got.dtype.itemsize == 6
        assert got["a"].tolist() == [1, 2, 3, 4, -1, -1]
        assert got["b"][:4].tolist() == [0.5, 1.5, 2.5, -0.0] and np.isnan(got["b"][4:]).all()
        a[5] = (9, 4.0)
        # (The edge chunk is stored whole: fill past the array's end.)
        assert (path / "c" / "1").read_bytes() == np.array([(-1, np.nan), (9, 4.0), (-1, np.nan), (-1, np.nan)], dtype=dtype).tobytes()
    values = np.array(["", "a", "ünï", "日本語x", "wxyz", "q"], dtype="<U4")
    with zarr.config.set(DEFAULT):
        zarr.create_array(str(tmp_path / "u"), shape=(6,), dtype="<U4", chunks=(4,))[...] = values
        zarr.create_array(str(tmp_path / "s"), shape=(6,), dtype="S3", chunks=(4,))[...] = [b"", b"a", b"\x00b", b"xyz", b"q", b"ab"]
    assert zuring.open_array(tmp_path / "u")[...].tolist() == values.tolist()
    assert zuring.open_array(tmp_path / "s")[...].tolist() == [b"", b"a", b"\x00b", b"xyz", b"q", b"ab"]


test_struct_and_fixed_length_types.rows = ["D11"]


def test_unknown_data_types_give_a_clear_error(tmp_path):
    write_meta(tmp_path / "x", meta(data_type="struct_unknown"))
    with pytest.raises((zuring.UnsupportedError, ValueError), match="struct_unknown"):
        zuring.open_array(tmp_path / "x")


test_unknown_data_types_give_a_clear_error.rows = ["D11"]


test_machine_learning_types_read_as_ml_dtypes.rows = ["D11"]


def test_chunk_size_zero_rejected(tmp_path):
    write_meta(tmp_path / "z", meta(chunk_grid={"name": "regular", "configuration": {"chunk_shape": [0]}}))
    with pytest.raises((ValueError, zuring.UnsupportedError), match="chunk"):
        zuring.open_array(tmp_path / "z")


test_chunk_size_zero_rejected.rows = ["G3"]


def test_rectilinear_grid(tmp_path):
    """A rectilinear grid (run-length encoded edges [2, 4] then [3, 3] along the second dimension,
    reaching past its end): zuring writes each chunk as the grid cell it is (little-endian int32,
    key by cell index) and reads every selection back; inside a sharding codec too, each shard's
    index sized for its own inner chunks."""
    grid = {"name": "rectilinear", "configuration": {"kind": "inline", "chunk_shapes": [[1, 2], [2, [3, 2]]]}}
    values = np.arange(3 * 7, dtype="<i4").reshape(3, 7)
    write_meta(tmp_path / "g", meta(shape=[3, 7], chunk_grid=grid, fill_value=-1))
    a = zuring.open_array(tmp_path / "g")
    a[...] = values
    assert a.write_chunk_sizes == ((1, 2), (2, 3, 2))
    # Cell (1, 1): rows 1..3, columns 2..5 (C order).
    assert (tmp_path / "g" / "c" / "1" / "1").read_bytes() == values[1:3, 2:5].tobytes()
    assert (tmp_path / "g" / "c" / "0" / "2").read_bytes() == values[0:1, 5:8].tobytes() + b"\xff" * 4
    np.testing.assert_array_equal(zuring.open_array(tmp_path / "g")[...], values)
    np.testing.assert_array_equal(a.oindex[[2, 0], [6, 1, 2]], values[np.ix_([2, 0], [6, 1, 2])])
    sharding = {"name": "sharding_indexed", "configuration": {"chunk_shape": [1, 1], "codecs": [LE], "index_codecs": [LE, {"name": "crc32c"}]}}
    write_meta(tmp_path / "s", meta(shape=[3, 7], chunk_grid=grid, fill_value=-1, codecs=[sharding]))
    s = zuring.open_array(tmp_path / "s")
    s[...] = values
    shard = (tmp_path / "s" / "c" / "1" / "1").read_bytes()
    assert len(shard) == 2 * 3 * (4 + 16) + 4  # 6 inner chunks and their index
    np.testing.assert_array_equal(zuring.open_array(tmp_path / "s")[...], values)


test_rectilinear_grid.rows = ["G4"]


def test_storage_transformers(tmp_path):
    write_meta(tmp_path / "t", meta(storage_transformers=[]))
    assert (zuring.open_array(tmp_path / "t")[...] == 0).all()
    write_meta(tmp_path / "u", meta(storage_transformers=[{"name": "no-such-transformer"}]))
    with pytest.raises((zuring.UnsupportedError, ValueError), match="no-such-transformer|storage"):
        zuring.open_array(tmp_path / "u")


test_storage_transformers.rows = ["M5"]


def test_consolidated_metadata_tolerated(tmp_path):
    with zarr.config.set(DEFAULT):
        g = zarr.open_group(str(tmp_path / "g"), mode="w")
        a = g.create_array("a", shape=(5,), dtype="int16", chunks=(2,))
        a[...] = np.arange(5)
        zarr.consolidate_metadata(str(tmp_path / "g"))
    assert "consolidated_metadata" in json.loads((tmp_path / "g" / "zarr.json").read_text())
    np.testing.assert_array_equal(zuring.open_array(tmp_path / "g" / "a")[...], np.arange(5))


test_consolidated_metadata_tolerated.rows = ["M7"]


def test_short_hand_names(tmp_path):
    m = meta(chunk_key_encoding="default", codecs=[{"name": "bytes", "configuration": {"endian": "little"}}, "crc32c"])
    write_meta(tmp_path / "s", m)
    a = zuring.open_array(tmp_path / "s")
    assert (a[...] == 0).all()
    a[0:4] = [1, 2, 3, 4]
    np.testing.assert_array_equal(zuring.open_array(tmp_path / "s")[...], [1, 2, 3, 4, 0, 0])


test_short_hand_names.rows = ["M8"]


@pytest.mark.parametrize("codec", [
    # numcodecs' delta storing floats of integers (numpy sums them as floats).
    {"name": "numcodecs.delta", "configuration": {"dtype": "<i4", "astype": "<f4"}},
    {"name": "zfp", "configuration": {"mode": "reversible"}},
    # numcodecs' fixedscaleoffset with an offset out of the elements' range (numpy raises).
    {"name": "numcodecs.fixedscaleoffset", "configuration": {"offset": 3000000000, "scale": 10, "dtype": "<i4", "astype": "<i2"}},
    # numcodecs' bitround of integers (int32 here), which numcodecs refuses and zarrs would do.
    {"name": "numcodecs.bitround", "configuration": {"keepbits": 3}},
])
def test_unsupported_codecs_give_a_clear_error(tmp_path, codec):
    codecs = [codec, LE] if codec["name"].startswith("numcodecs") else [codec]
    write_meta(tmp_path / "c", meta(codecs=codecs))
    with pytest.raises((zuring.UnsupportedError, ValueError), match=codec["name"].split(".")[-1]):
        zuring.open_array(tmp_path / "c")


test_unsupported_codecs_give_a_clear_error.rows = ["C10", "C11"]


@pytest.mark.parametrize("name", ["numcodecs.bz2", "numcodecs.adler32", "numcodecs.fletcher32", "numcodecs.zlib", "numcodecs.shuffle", "numcodecs.bitround", "numcodecs.pcodec", "numcodecs.zstd", "numcodecs.gzip", "numcodecs.blosc", "numcodecs.crc32c", "numcodecs.delta", "numcodecs.lz4", "numcodecs.crc32", "numcodecs.fixedscaleoffset", "numcodecs.quantize", "numcodecs.astype", "numcodecs.jenkins_lookup3", "numcodecs.lzma"])
def test_numcodecs_written_by_zarr(tmp_path, name):
    """numcodecs codecs under their v3 names, in arrays zarr-python wrote: read by zuring's
    native API as zarr reads them (zstd, gzip, blosc, crc32c as the v3 codecs that write the
    same streams, with numcodecs' defaults for what zarr leaves out of their configuration)."""
    import warnings

    if name == "numcodecs.pcodec":
        pytest.importorskip("pcodec")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import zarr.codecs.numcodecs as nc

        codec = {
            "numcodecs.bz2": nc.BZ2(level=1), "numcodecs.adler32": nc.Adler32(), "numcodecs.fletcher32": nc.Fletcher32(),
            "numcodecs.zlib": nc.Zlib(level=1), "numcodecs.shuffle": nc.Shuffle(elementsize=4), "numcodecs.bitround": nc.BitRound(keepbits=6),
            "numcodecs.pcodec": nc.PCodec(level=4), "numcodecs.zstd": nc.Zstd(), "numcodecs.gzip": nc.GZip(level=4),
            "numcodecs.blosc": nc.Blosc(cname="zstd", shuffle=-1), "numcodecs.crc32c": nc.CRC32C(),
            "numcodecs.delta": nc.Delta(dtype="<f4"), "numcodecs.lz4": nc.LZ4(), "numcodecs.crc32": nc.CRC32(),
            "numcodecs.fixedscaleoffset": nc.FixedScaleOffset(offset=-5, scale=100, dtype="<f4", astype="<i2"),
            "numcodecs.quantize": nc.Quantize(digits=2, dtype="<f4"), "numcodecs.astype": nc.AsType(encode_dtype="<f8", decode_dtype="<f4"),
            "numcodecs.jenkins_lookup3": nc.JenkinsLookup3(initval=9), "numcodecs.lzma": nc.LZMA(preset=1),
        }[name]
        filters = (nc.BitRound, nc.Delta, nc.FixedScaleOffset, nc.Quantize, nc.AsType)
        kind = "filters" if isinstance(codec, filters) else "serializer" if isinstance(codec, nc.PCodec) else "compressors"
        values = (np.arange(30, dtype="<f4") * 0.731 - 5).reshape(5, 6)
        with zarr.config.set(DEFAULT):
            z = zarr.create_array(str(tmp_path / "n"), shape=(5, 6), dtype="<f4", chunks=(2, 4), **{kind: codec if kind == "serializer" else [codec]})
            z[...] = values
            expected = z[...]
    assert json.loads((tmp_path / "n" / "zarr.json").read_text())["codecs"] and name in (tmp_path / "n" / "zarr.json").read_text()
    assert zuring.open_array(tmp_path / "n")[...].tobytes() == expected.tobytes()


test_numcodecs_written_by_zarr.rows = ["C10", "C11"]


def test_packbits(tmp_path):
    write_meta(tmp_path / "p", meta(data_type="bool", fill_value=False, codecs=[{"name": "packbits"}]))
    a = zuring.open_array(tmp_path / "p")
    a[...] = [True, False, True, True, False, True]
    np.testing.assert_array_equal(zuring.open_array(tmp_path / "p")[...], [True, False, True, True, False, True])


test_packbits.rows = ["C11"]


def test_huge_shard_index(tmp_path):
    """A shard of 1024 x 1024 inner chunks (1M index entries, 16 MiB index): reading one inner
    chunk reads and decodes the index once; later reads of the shard take it from the cache and
    read only their chunks' bytes (counted by the kernel: a process reading through zuring's pread
    backend, whose reads /proc/self/io counts in `rchar`)."""
    m = {"zarr_format": 3, "node_type": "array", "shape": [1024, 1024], "data_type": "uint8",
         "chunk_grid": {"name": "regular", "configuration": {"chunk_shape": [1024, 1024]}},
         "chunk_key_encoding": {"name": "default"}, "fill_value": 0,
         "codecs": [{"name": "sharding_indexed", "configuration": {"chunk_shape": [1, 1], "codecs": [{"name": "bytes"}],
                     "index_codecs": [LE, {"name": "crc32c"}], "index_location": "end"}}]}
    a = zuring.create_array(tmp_path / "h", m)
    a[500:502, 700:702] = 9
    script = f"""
import zuring
def rchar():
    return int(dict(line.split(": ") for line in open("/proc/self/io").read().splitlines())["rchar"])
a = zuring.open_array({str(tmp_path / "h")!r})
start = rchar()
assert a[500, 700] == 9 and a[501, 701] == 9 and a[0, 0] == 0
first = rchar() - start
start = rchar()
for i in range(50):
    assert a[500 + i % 2, 700 + i % 3] == (9 if i % 3 < 2 else 0)
print(first, rchar() - start)
"""
    env = dict(os.environ, ZURING_IO="pread")
    done = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, check=True)
    first, again = map(int, done.stdout.split())
    index_bytes = 1024 * 1024 * 16 + 4
    assert first >= index_bytes, (first, "the first read reads the whole index")
    assert again < 4096, (again, "50 reads of cached index entries read their chunks' bytes only")


test_huge_shard_index.rows = ["E7"]
