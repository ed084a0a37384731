"""xarray (with dask) on top of zarr-python with zuring's pipeline: writes with sharding, appends
along time (shards covered in part), region writes, and lazy dask reads with rechunking and
selections, all in Rust (strict mode), equal to the data and to zarr's default pipeline."""

import numpy as np
import pandas as pd
import pytest
import zarr

from zuring import pipeline

xr = pytest.importorskip("xarray")
pytest.importorskip("dask")

ZURING = {"codec_pipeline.path": "zuring.ZuringCodecPipeline", "codec_pipeline.strict": True}
DEFAULT = {"codec_pipeline.path": "zarr.core.codec_pipeline.BatchedCodecPipeline"}


def make(rng, t0, nt):
    time = pd.date_range("2026-01-01", periods=nt, freq="h") + pd.Timedelta(hours=t0)
    return xr.Dataset(
        {
            "t2m": (("time", "y", "x"), rng.standard_normal((nt, 20, 24)).astype("float32")),
            "flag": (("time", "y", "x"), rng.integers(0, 3, (nt, 20, 24)).astype("uint8")),
        },
        coords={"time": time, "y": np.linspace(0, 1, 20), "x": np.arange(24.0)},
        attrs={"title": "zuring test"},
    )


@pytest.mark.filterwarnings("ignore::UserWarning")
def test_xarray_dask_round_trip(tmp_path):
    rng = np.random.default_rng(0)
    path = str(tmp_path / "d.zarr")
    first, more = make(rng, 0, 6), make(rng, 6, 5)
    encoding = {"t2m": {"chunks": (2, 8, 8), "shards": (4, 16, 16)}, "flag": {"chunks": (3, 10, 12)}}
    before = dict(pipeline.STATS)
    with zarr.config.set(ZURING):
        first.to_zarr(path, zarr_format=3, encoding=encoding, consolidated=False)
        # Appending 5 time steps fills the half-written last shard and starts new ones.
        more.to_zarr(path, append_dim="time", consolidated=False)
        full = xr.concat([first, more], dim="time")
        # A region write across a shard boundary (time 3 and 4), covering shards in part.
        patch = full[["t2m"]].isel(time=slice(3, 5)).drop_vars(["y", "x"]).copy(deep=True)
        patch["t2m"][:] = 7.0
        patch.to_zarr(path, region={"time": slice(3, 5)}, consolidated=False)
        full["t2m"][3:5] = 7.0
        got = xr.open_zarr(path, consolidated=False).compute()
        xr.testing.assert_identical(got, full)
        # Lazy reads through dask with chunks that cut across zarr's, then a selection.
        lazy = xr.open_zarr(path, consolidated=False, chunks={"time": 3, "y": 7, "x": 5})
        sub = lazy.isel(time=[1, 8, 9], x=slice(3, 20, 4)).mean("y").compute()
        xr.testing.assert_allclose(sub, full.isel(time=[1, 8, 9], x=slice(3, 20, 4)).mean("y"))
    assert pipeline.STATS["native_reads"] > before["native_reads"]
    assert pipeline.STATS["native_writes"] > before["native_writes"]
    with zarr.config.set(DEFAULT):
        xr.testing.assert_identical(xr.open_zarr(path, consolidated=False).compute(), full)


@pytest.mark.filterwarnings("ignore::UserWarning")
def test_dask_chunks_smaller_than_shards_written_by_threads_lose_nothing(tmp_path):
    """``to_zarr(safe_chunks=False)`` with dask chunks that split shards, written by dask's
    threads at once: each task's write reads the shards it covers in part, merges and replaces
    them, and writes into the same shard take turns (zarr's default pipeline got 2.6 million
    of these 4.2 million elements wrong, zarrs-python 2.1 million, in a larger run)."""
    import dask
    import dask.array as da

    want = np.arange(16 * 64 * 64, dtype="i4").reshape(16, 64, 64)
    ds = xr.Dataset({"v": (("t", "y", "x"), da.from_array(want, chunks=(2, 16, 16)))})
    path = str(tmp_path / "split.zarr")
    with zarr.config.set(ZURING), dask.config.set(scheduler="threads", num_workers=8):
        ds.to_zarr(path, encoding={"v": {"chunks": (1, 16, 16), "shards": (8, 32, 32)}}, zarr_format=3, safe_chunks=False, mode="w")
    with zarr.config.set(DEFAULT):
        got = zarr.open_array(path, path="v", mode="r")[...]
    assert int((got != want).sum()) == 0, f"{int((got != want).sum())} elements lost"
