"""Read every fixture written by another implementation and compare values: zuring's native
API and zarr-python with zuring's CodecPipeline, whole arrays and selections that cut through
chunk and shard edges."""

import json
from pathlib import Path

import numpy as np
import pytest
import zarr

import zuring

FIXTURES = Path(__file__).parents[1] / "fixtures" / "data"
CASES = sorted(p.name for p in FIXTURES.iterdir() if (p / "case.json").exists()) if FIXTURES.exists() else []
ZURING = {"codec_pipeline.path": "zuring.ZuringCodecPipeline", "codec_pipeline.strict": True}


def load(case):
    meta = json.loads((FIXTURES / case / "case.json").read_text())
    return FIXTURES / case / meta["array"], np.load(FIXTURES / case / "expected.npy", allow_pickle=False)


def cuts(shape):
    """Selections crossing chunk and shard edges (odd offsets, strides, reversed)."""
    if not shape:
        return [()]
    return [
        tuple(slice(1 % max(n, 1), max(n - 1, 1)) for n in shape),
        tuple(slice(None, None, 2) for _ in shape),
        tuple(slice(None, None, -3) for _ in shape),
        tuple(min(n - 1, 3) if n else slice(None) for n in shape),
    ]


@pytest.mark.parametrize("case", CASES)
def test_native_reads(case):
    path, expected = load(case)
    a = zuring.open_array(path)
    assert a.shape == expected.shape
    got = a[...]
    np.testing.assert_array_equal(got, expected)
    if expected.dtype.kind == "f":
        # Bits exactly (NaN payloads, -0.0).
        np.testing.assert_array_equal(got.view(f"u{got.dtype.itemsize}"), expected.view(f"u{expected.dtype.itemsize}"))
    for sel in cuts(expected.shape):
        if 0 in expected.shape:
            continue
        np.testing.assert_array_equal(a[sel], expected[sel])


@pytest.mark.parametrize("case", CASES)
def test_pipeline_reads(case):
    path, expected = load(case)
    with zarr.config.set(ZURING):
        z = zarr.open_array(str(path), mode="r")
        np.testing.assert_array_equal(z[...], expected)
        for sel in cuts(expected.shape):
            if 0 in expected.shape or any(isinstance(s, slice) and (s.step or 1) < 0 for s in sel):
                continue
            np.testing.assert_array_equal(z[sel], expected[sel])


def test_group_attributes_and_names():
    path, _ = load("group-member")
    a = zuring.open_array(path)
    assert a.attrs == {"units": "K", "nested": {"a": [1, 2]}}
    assert a.dimension_names == ("y", None)
    root = zarr.open_group(str(FIXTURES / "group-member" / "array"), mode="r")
    assert "sub" in root
    # zuring's own group API lists and opens the same hierarchy.
    ours = zuring.open_group(FIXTURES / "group-member" / "array")
    assert ours.attrs == dict(root.attrs)
    assert sorted(ours) == sorted(name for name, _ in root.members())
    for name, node in root.members():
        assert isinstance(ours[name], zuring.Group if isinstance(node, zarr.Group) else zuring.Array)


test_group_attributes_and_names.rows = ["M2", "M3", "M4"]
