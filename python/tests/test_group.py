"""Groups: hierarchies written by zarr-python (v3 and v2, consolidated or not) listed and opened
by zuring; groups zuring creates open in zarr-python; bad names and metadata raise clearly."""

import json

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
    assert g.members() == {"sub": "group", "t2m": "array"}
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
    assert zuring.open_group(tmp_path / "made").members() == {"sub": "group", "x": "array"}
    with zarr.config.set(DEFAULT):
        theirs = zarr.open_group(str(tmp_path / "made"), mode="r")
        assert dict(theirs.attrs) == {"source": "zuring"}
        assert sorted(name for name, _ in theirs.members()) == ["sub", "x"]
        np.testing.assert_array_equal(theirs["x"][...], [1, 2, 3])


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
