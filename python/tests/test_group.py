"""Groups: hierarchies written by zarr-python (v3 and v2, consolidated or not) listed and opened
by zuring; groups zuring creates open in zarr-python; bad names and metadata raise clearly."""

import json
import os

import numpy as np
import pytest
import zarr

import zuring

DEFAULT = {"codec_pipeline.path": "zarr.core.codec_pipeline.BatchedCodecPipeline"}


@pytest.mark.parametrize("zarr_format", [2, 3])
@pytest.mark.parametrize("consolidated", [False, True])
def test_hierarchy_written_by_zarr(tmp_path, zarr_format, consolidated):
    path = str(tmp_path / "h.zarr")
    with zarr.config.set(DEFAULT):
        root = zarr.open_group(path, mode="w", zarr_format=zarr_format, attributes={"title": "h", "n": [1, 2]})
        t2m = root.create_array("t2m", shape=(4, 6), chunks=(2, 3), dtype="float32")
        t2m[...] = np.arange(24, dtype="float32").reshape(4, 6)
        sub = root.create_group("sub", attributes={"level": 1})
        deep = sub.create_array("deep", shape=(5,), chunks=(2,), dtype="int16", fill_value=-1)
        deep[:3] = [1, 2, 3]
        if consolidated:
            zarr.consolidate_metadata(path)
        theirs = sorted(name for name, _ in root.members())
    g = zuring.open_group(path)
    assert g.zarr_format == zarr_format
    assert g.attrs == {"title": "h", "n": [1, 2]}
    assert list(g) == theirs == ["sub", "t2m"]
    kinds = lambda group, **kw: {n: type(m).__name__ for n, m in group.members(**kw)}  # noqa: E731
    assert kinds(g) == {"sub": "Group", "t2m": "Array"}
    # As zarr's: deeper levels named by their path, sorted; the keys alone.
    assert kinds(g, max_depth=None) == kinds(g, max_depth=1) == {"sub": "Group", "sub/deep": "Array", "t2m": "Array"}
    assert [n for n, _ in g.members(max_depth=None)] == ["sub", "sub/deep", "t2m"]
    with zarr.config.set(DEFAULT):
        assert sorted(n for n, _ in root.members(max_depth=None)) == ["sub", "sub/deep", "t2m"]
    assert (list(g.keys()), list(g.array_keys()), list(g.group_keys())) == (["sub", "t2m"], ["t2m"], ["sub"])
    assert len(g) == 2 and "t2m" in g and "sub/deep" in g and "nothing" not in g
    np.testing.assert_array_equal(g["t2m"][...], np.arange(24, dtype="float32").reshape(4, 6))
    np.testing.assert_array_equal(g["sub/deep"][...], [1, 2, 3, -1, -1])
    assert isinstance(g["sub"], zuring.Group) and g["sub"].attrs == {"level": 1}
    assert [name for name, _ in g.arrays()] == ["t2m"] and [name for name, _ in g.groups()] == ["sub"]
    assert isinstance(zuring.open(path), zuring.Group) and isinstance(zuring.open(f"{path}/t2m"), zuring.Array)
    # Writes through a member reach zarr-python.
    g["sub/deep"][3:] = [7, 8]
    with zarr.config.set(DEFAULT):
        np.testing.assert_array_equal(zarr.open_array(f"{path}/sub/deep", mode="r")[...], [1, 2, 3, 7, 8])


def test_created_groups_open_in_zarr(tmp_path):
    g = zuring.create_group(tmp_path / "made", {"source": "zuring"})
    assert g.attrs == {"source": "zuring"} and len(g) == 0
    meta = {"zarr_format": 3, "node_type": "array", "shape": [3], "data_type": "uint8",
            "chunk_grid": {"name": "regular", "configuration": {"chunk_shape": [3]}},
            "chunk_key_encoding": {"name": "default"}, "fill_value": 0, "codecs": [{"name": "bytes"}]}
    a = zuring.create_array(tmp_path / "made" / "x", meta)
    a[...] = [1, 2, 3]
    sub = zuring.create_group(tmp_path / "made" / "sub")
    assert sub.attrs == {}
    assert {n: type(m).__name__ for n, m in zuring.open_group(tmp_path / "made").members()} == {"sub": "Group", "x": "Array"}
    with zarr.config.set(DEFAULT):
        theirs = zarr.open_group(str(tmp_path / "made"), mode="r")
        assert dict(theirs.attrs) == {"source": "zuring"}
        assert sorted(name for name, _ in theirs.members()) == ["sub", "x"]
        np.testing.assert_array_equal(theirs["x"][...], [1, 2, 3])


def test_created_nodes_take_numpy_values(tmp_path):
    """create_group's attributes are stored as attrs stores them (numpy values as JSON numbers
    and lists); what JSON cannot hold is refused before anything is written. create_array takes
    numpy numbers in its metadata document."""
    g = zuring.create_group(tmp_path / "g", {"scale": np.float32(0.5), "axes": np.array([1, 2]), "n": np.int64(7)})
    assert g.attrs == {"scale": 0.5, "axes": [1, 2], "n": 7}
    with zarr.config.set(DEFAULT):
        assert dict(zarr.open_group(str(tmp_path / "g"), mode="r").attrs) == {"scale": 0.5, "axes": [1, 2], "n": 7}
    with pytest.raises(ValueError, match="'bad'.*NaN"):
        zuring.create_group(tmp_path / "nan", {"bad": float("nan")})
    with pytest.raises(TypeError, match="names must be strings"):
        zuring.create_group(tmp_path / "key", {1: "one"})
    assert not (tmp_path / "nan").exists() and not (tmp_path / "key").exists()
    meta = {"zarr_format": 3, "node_type": "array", "shape": [np.int64(4)], "data_type": "int16",
            "chunk_grid": {"name": "regular", "configuration": {"chunk_shape": [np.uint32(2)]}},
            "chunk_key_encoding": {"name": "default"}, "fill_value": np.int16(-1), "codecs": [{"name": "bytes"}]}
    a = zuring.create_array(tmp_path / "g" / "a", meta)
    assert a.shape == (4,) and a.chunks == (2,) and a.fill_value == -1
    np.testing.assert_array_equal(a[...], [-1, -1, -1, -1])


def test_group_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="no Zarr group"):
        zuring.open_group(tmp_path / "missing")
    a = zuring.create_array(tmp_path / "arr", {"zarr_format": 3, "node_type": "array", "shape": [2], "data_type": "uint8",
                                                "chunk_grid": {"name": "regular", "configuration": {"chunk_shape": [2]}},
                                                "chunk_key_encoding": {"name": "default"}, "fill_value": 0, "codecs": [{"name": "bytes"}]})
    assert a.shape == (2,)
    with pytest.raises(ValueError, match='node_type is "array"'):
        zuring.open_group(tmp_path / "arr")
    g = zuring.create_group(tmp_path / "g")
    for bad in ["../arr", "nothing"]:
        with pytest.raises(KeyError):
            g[bad]
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "zarr.json").write_text("{nope")
    with pytest.raises(ValueError, match="zarr.json is not valid JSON"):
        zuring.open_group(tmp_path / "bad")
    (tmp_path / "bad" / "zarr.json").write_text(json.dumps({"zarr_format": 3, "node_type": "group", "attributes": 5}))
    with pytest.raises(ValueError, match="attributes"):
        zuring.open_group(tmp_path / "bad")


def _set_attributes(path, tag, handle=None):
    node = handle if handle is not None else zuring.open_array(path)
    for i in range(20):
        node.attrs[f"{tag}.{i}"] = i
    if tag % 3 == 0:
        node.attrs.update({f"{tag}.u": tag, f"{tag}.v": -tag})
        del node.attrs[f"{tag}.0"]


@pytest.mark.parametrize("zarr_format", [2, 3])
def test_attribute_changes_of_many_writers_at_once_are_all_kept(tmp_path, zarr_format):
    """8 threads (4 sharing one handle, 4 with handles of their own) and 4 forked processes
    each set their own 20 attributes of one array at once, some also updating and deleting
    theirs: every change is kept. Each change is applied to the attributes stored at that
    moment, read again while the document is held; before, a handle wrote its own copy of all
    of them, and 200 of the 240 were lost in a run of this."""
    import multiprocessing as mp
    import threading

    path = str(tmp_path / "a.zarr")
    zarr.create_array(path, shape=(10,), chunks=(5,), dtype="i4", zarr_format=zarr_format, attributes={"keep": True})
    shared = zuring.open_array(path)
    threads = [threading.Thread(target=_set_attributes, args=(path, t, shared if t % 2 else None)) for t in range(8)]
    processes = [mp.get_context("fork").Process(target=_set_attributes, args=(path, 100 + t)) for t in range(4)]
    for w in threads + processes:
        w.start()
    for w in threads + processes:
        w.join()
    assert all(p.exitcode == 0 for p in processes)
    want = {"keep": True}
    for tag in [*range(8), *range(100, 104)]:
        want.update({f"{tag}.{i}": i for i in range(20)})
        if tag % 3 == 0:
            want.update({f"{tag}.u": tag, f"{tag}.v": -tag})
            del want[f"{tag}.0"]
    assert dict(zarr.open_array(path, mode="r").attrs) == want
    assert dict(zuring.open_array(path).attrs) == want
    # A handle's own view is what it stored: other writers' keys included.
    shared.attrs["last"] = 1
    assert dict(shared.attrs) == {**want, "last": 1}


@pytest.mark.parametrize("zarr_format", [2, 3])
def test_attribute_changes_are_written_for_zarr_to_read(tmp_path, zarr_format):
    """``attrs`` of arrays and groups is zarr's: each change is written to the node's metadata
    document at once (the rest of the document unchanged), and zarr-python and a fresh open
    read it; values JSON cannot hold are refused with nothing written."""
    root = zarr.open_group(str(tmp_path / "g.zarr"), mode="w", zarr_format=zarr_format, attributes={"keep": 1})
    root.create_array("t", shape=(4, 3), chunks=(2, 3), dtype="float32", attributes={"units": "K"})
    root["t"][...] = np.arange(12, dtype="float32").reshape(4, 3)
    g = zuring.open_group(tmp_path / "g.zarr")
    a = g["t"]
    stored = {name: open(tmp_path / "g.zarr" / "t" / name, "rb").read() for name in os.listdir(tmp_path / "g.zarr" / "t") if name in (".zarray", "zarr.json")}

    a.attrs["scale"] = np.float32(0.5)  # a numpy scalar is stored as the number
    a.attrs.update({"offset": np.int64(3), "axes": np.array(["y", "x"])}, note="ü")
    del a.attrs["units"]
    g.attrs["title"] = "sat"
    assert g.update_attributes({"n": [1, 2]}) is g
    want_a = {"scale": 0.5, "offset": 3, "axes": ["y", "x"], "note": "ü"}
    want_g = {"keep": 1, "title": "sat", "n": [1, 2]}
    assert a.attrs == want_a and a.metadata["attributes"] == want_a and g.attrs == want_g
    for reader in (zarr.open_group(str(tmp_path / "g.zarr"), mode="r"), zuring.open_group(tmp_path / "g.zarr")):
        assert dict(reader.attrs) == want_g
        assert dict(reader["t"].attrs) == want_a
    assert zuring.open_array(tmp_path / "g.zarr" / "t").attrs == want_a
    # Only the attributes changed: the array reads as before, its shape and codecs as stored.
    np.testing.assert_array_equal(zarr.open_array(str(tmp_path / "g.zarr" / "t"), mode="r")[...], np.arange(12, dtype="float32").reshape(4, 3))
    for name, before in stored.items():
        after = json.loads(open(tmp_path / "g.zarr" / "t" / name, "rb").read())
        before = json.loads(before)
        before.pop("attributes", None), after.pop("attributes", None)
        assert after == before, name

    # put replaces everything; what JSON cannot hold is refused and nothing is written.
    a.attrs.put({"only": True})
    for bad, err in [({"x": float("nan")}, ValueError), ({"x": [1.0, np.inf]}, ValueError), ({1: "k"}, TypeError), ({"x": object()}, TypeError)]:
        with pytest.raises(err):
            a.attrs.update(bad)
        with pytest.raises(err):
            g.attrs.put(bad)
    assert dict(zarr.open_array(str(tmp_path / "g.zarr" / "t"), mode="r").attrs) == {"only": True}
    assert dict(zarr.open_group(str(tmp_path / "g.zarr"), mode="r").attrs) == want_g
    assert [n for n in os.listdir(tmp_path / "g.zarr" / "t") if n.endswith(".tmp")] == []
    with pytest.raises(KeyError):
        del a.attrs["missing"]


@pytest.mark.parametrize("zarr_format", [2, 3])
def test_attributes_holding_lone_surrogates_are_read_and_kept(tmp_path, zarr_format):
    """A Python string may hold a lone UTF-16 surrogate; zarr-python stores one in a node's
    attributes as the JSON escape ``\\ud800``, which Rust's JSON readers refuse. zuring opens
    such nodes and lists, reads and writes them as zarr does, and what it writes back (an
    attribute change, a resize, a new node) keeps the surrogates as they were."""
    path = str(tmp_path / "h.zarr")
    odd = {"note": "bad\ud800tail", "list": ["\udfff", "\U0001f600", "\\ud800"], "key\udc00": 1}
    with zarr.config.set(DEFAULT):
        root = zarr.open_group(path, mode="w", zarr_format=zarr_format, attributes=odd)
        a = root.create_array("a", shape=(4, 4), chunks=(2, 2), dtype="int16", attributes=odd)
        a[...] = np.arange(16, dtype="int16").reshape(4, 4)
        root.create_group("sub", attributes={"s": "\udbff"})
    g = zuring.open_group(path)
    assert g.attrs == odd and [n for n, _ in g.members()] == ["a", "sub"]
    assert g["sub"].attrs == {"s": "\udbff"}
    z = g["a"]
    assert z.attrs == odd
    np.testing.assert_array_equal(z[...], np.arange(16).reshape(4, 4))
    z.attrs["more"] = "x\udc80"
    z.resize((2, 6))
    z[:, 4:] = 9
    g.attrs["n"] = 2
    with zarr.config.set(DEFAULT):
        theirs = zarr.open_array(f"{path}/a", mode="r")
        assert theirs.attrs.asdict() == {**odd, "more": "x\udc80"}
        assert theirs.shape == (2, 6)
        np.testing.assert_array_equal(theirs[...], [[0, 1, 2, 3, 9, 9], [4, 5, 6, 7, 9, 9]])
        assert zarr.open_group(path, mode="r").attrs.asdict() == {**odd, "n": 2}
    # Through the pipeline (strict: a fallback would raise), no surrogate refused either.
    with zarr.config.set({"codec_pipeline.path": "zuring.ZuringCodecPipeline", "codec_pipeline.strict": True}):
        theirs = zarr.open_array(f"{path}/a", mode="r+")
        theirs[0, :2] = [-1, -2]
        np.testing.assert_array_equal(theirs[0], [-1, -2, 2, 3, 9, 9])
    if zarr_format == 3:
        made = zuring.create_group(tmp_path / "made", odd)
        assert made.attrs == odd
        with zarr.config.set(DEFAULT):
            assert zarr.open_group(str(tmp_path / "made"), mode="r").attrs.asdict() == odd


def test_groups_create_members_as_zarr(tmp_path):
    """``Group.create_group``, ``create_array`` and ``require_group``, as zarr's: nested names
    make their missing parent groups; a stored node is refused unless ``overwrite``; zarr reads
    the hierarchy made; a read-only group creates nothing."""
    root = zuring.create_group(tmp_path / "h", {"title": "made"})
    t2m = root.create_array("t2m", shape=(4, 6), dtype="f4", chunks=(2, 3), dimension_names=["y", "x"])
    t2m[...] = np.arange(24, dtype="f4").reshape(4, 6)
    deep = root.create_array("a/b/c", shape=(5,), dtype="i2", chunks=(2,), fill_value=-1)
    deep[:2] = [7, 8]
    sub = root.require_group("a")
    assert isinstance(sub, zuring.Group) and sub.path == str(tmp_path / "h" / "a")
    made = root.require_group("n", {"k": 1})
    assert dict(made.attrs) == {"k": 1} and dict(root.require_group("n").attrs) == {"k": 1}
    with pytest.raises(FileExistsError, match="array is already here"):
        root.require_group("t2m")
    with pytest.raises(FileExistsError, match="already here"):
        root.create_array("t2m", shape=(1,), dtype="u1", chunks=(1,))
    with pytest.raises(FileExistsError, match="already here"):
        root.create_group("a")
    root.create_group("n", {"k": 2}, overwrite=True)
    with pytest.raises(KeyError, match="not a member name"):
        root.create_group("../out")
    kinds = {n: type(m).__name__ for n, m in root.members(max_depth=None)}
    assert kinds == {"a": "Group", "a/b": "Group", "a/b/c": "Array", "n": "Group", "t2m": "Array"}
    with zarr.config.set(DEFAULT):
        theirs = zarr.open_group(str(tmp_path / "h"), mode="r")
        assert sorted(n for n, _ in theirs.members(max_depth=None)) == sorted(kinds)
        assert theirs.attrs.asdict() == {"title": "made"} and theirs["n"].attrs.asdict() == {"k": 2}
        np.testing.assert_array_equal(theirs["a/b/c"][...], [7, 8, -1, -1, -1])
        np.testing.assert_array_equal(theirs["t2m"][...], np.arange(24).reshape(4, 6))
    read_only = zuring.open_group(tmp_path / "h", mode="r")
    for make in (lambda: read_only.create_group("x"), lambda: read_only.create_array("y", shape=(1,), dtype="u1", chunks=(1,))):
        with pytest.raises(ValueError, match="read-only"):
            make()
    assert not (tmp_path / "h" / "x").exists() and not (tmp_path / "h" / "y").exists()
