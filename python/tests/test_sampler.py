"""zuring.CropSampler: joint windows, determinism, resumption, rank splits, errors."""

import numpy as np
import pytest

import zuring


def coord_array(path, shape, chunks, shards=None, dims=("time", "y", "x"), dtype="int64", stride=(1, 1, 1)):
    """An array whose values encode their coordinates (in the reference grid: coord * stride)."""
    meta = {
        "zarr_format": 3, "node_type": "array", "shape": list(shape), "data_type": dtype,
        "chunk_grid": {"name": "regular", "configuration": {"chunk_shape": list(shards or chunks)}},
        "chunk_key_encoding": {"name": "default"}, "fill_value": 0, "dimension_names": list(dims),
        "codecs": [{"name": "bytes", "configuration": {"endian": "little"}}, {"name": "zstd", "configuration": {"level": 1, "checksum": True}}],
    }
    if shards:
        meta["codecs"] = [{"name": "sharding_indexed", "configuration": {"chunk_shape": list(chunks), "codecs": meta["codecs"],
                           "index_codecs": [{"name": "bytes", "configuration": {"endian": "little"}}, {"name": "crc32c"}]}}]
    a = zuring.create_array(path, meta)
    grids = np.meshgrid(*[np.arange(n) * s for n, s in zip(shape, stride)], indexing="ij")
    values = sum(g * 1000 ** (len(shape) - 1 - i) for i, g in enumerate(grids))
    a[...] = values.astype(dtype)
    return a


def starts_of(batch):
    """Window starts decoded from each crop's first value."""
    first = batch.reshape(batch.shape[0], -1)[:, 0]
    return [tuple(int(v) // 1000 ** (2 - i) % 1000 for i in range(3)) for v in first]


def test_single_array_batches_are_the_windows(tmp_path):
    a = coord_array(tmp_path / "a", (20, 50, 60), (4, 10, 10), (8, 20, 20))
    s = zuring.CropSampler(a, (4, 16, 16), batch_size=8, seed=3, samples_per_epoch=64)
    assert len(s) == 8
    n = 0
    for batch in s:
        assert batch.shape == (8, 4, 16, 16) and batch.dtype == np.int64 and batch.flags.c_contiguous
        for crop, w in zip(batch, s.last_windows):
            np.testing.assert_array_equal(crop, a[w[0] : w[0] + 4, w[1] : w[1] + 16, w[2] : w[2] + 16])
        n += 1
    assert n == 8


def test_windows_come_with_their_own_batch(tmp_path):
    """with_windows(): each batch with its crops' starts, the same batches and windows as
    iterating with last_windows; a batch's windows stay its own when another iteration of the
    sampler (another thread's) moves last_windows on."""
    a = coord_array(tmp_path / "a", (8, 40, 40), (4, 10, 10), (8, 20, 20))
    s = zuring.CropSampler(a, (4, 10, 10), batch_size=3, seed=2, samples_per_epoch=12)
    plain = [(starts_of(batch), [tuple(w) for w in s.last_windows]) for batch in s]
    s.set_epoch(0)
    it = s.with_windows()
    batch, windows = next(it)
    assert windows.dtype == np.int64 and windows.shape == (3, 3)
    first = (starts_of(batch), [tuple(w) for w in windows.tolist()])
    assert first == plain[0] and first[0] == first[1]
    other = iter(s)
    assert starts_of(next(other)) == plain[1][0] and [tuple(w) for w in s.last_windows] == plain[1][1]
    assert [tuple(w) for w in windows.tolist()] == plain[0][1]
    del it, other
    s.set_epoch(0)
    assert [(starts_of(b), [tuple(x) for x in w.tolist()]) for b, w in s.with_windows()] == plain


def test_joint_crops_at_different_resolutions(tmp_path):
    sat = coord_array(tmp_path / "sat", (48, 40, 40), (4, 8, 8))
    # Hourly NWP with two channels (taken whole), on the satellite's time grid / 4.
    nwp = coord_array(tmp_path / "nwp", (12, 40, 2), (3, 20, 2), dims=("time", "y", "channel"), stride=(4, 1, 1))
    s = zuring.CropSampler(
        {"sat": sat, "nwp": nwp}, {"time": 8, "y": 8, "x": 8}, batch_size=4, seed=1, samples_per_epoch=16,
        strides={"nwp": {"time": 4}}, full_dims={"nwp": ["channel"]},
    )
    assert s.crop_shapes() == {"sat": (8, 8, 8), "nwp": (2, 8, 2)}
    for batch in s:
        assert set(batch) == {"sat", "nwp"}
        for b, (t, y, x) in enumerate(s.last_windows):
            assert t % 4 == 0
            assert batch["sat"][b, 0, 0, 0] == t * 1_000_000 + y * 1000 + x
            # The NWP crop covers the same hours: its first time step is the window's hour.
            assert batch["nwp"][b, 0, 0, 0] == t * 1_000_000 + y * 1000
            assert batch["nwp"][b, 1, 0, 1] == (t + 4) * 1_000_000 + y * 1000 + 1


def test_deterministic_resumable_and_rank_disjoint(tmp_path):
    a = coord_array(tmp_path / "a", (16, 40, 40), (4, 10, 10))
    kw = dict(batch_size=5, seed=9, mode="grid", drop_last=False)
    windows = lambda s: [tuple(w) for _ in s for w in s.last_windows]  # noqa: E731
    s1 = zuring.CropSampler(a, (4, 10, 10), **kw)
    first = windows(s1)
    # A 4 x 4 x 4 grid of tiles; 13 batches, the last one short.
    assert len(s1) == 13 and len(first) == 64 and len(set(first)) == 64
    assert windows(zuring.CropSampler(a, (4, 10, 10), **kw)) == first
    s1.set_epoch(1)
    assert windows(s1) != first and sorted(windows(s1)) == sorted(first)
    # Resume from a state dict taken after 3 batches.
    s2 = zuring.CropSampler(a, (4, 10, 10), **kw)
    it = iter(s2)
    got = [tuple(w) for _ in range(3) for w in (next(it), s2.last_windows)[1]]
    state = s2.state_dict()
    assert state["batches_served"] == 3
    s3 = zuring.CropSampler(a, (4, 10, 10), **kw)
    s3.load_state_dict(state)
    assert got + windows(s3) == first
    # One rank's batches split between three processes: batches w, w + 3, ... each.
    def batch_windows(sampler):
        return [[tuple(w) for w in sampler.last_windows] for _ in sampler]

    whole = batch_windows(zuring.CropSampler(a, (4, 10, 10), **kw))
    assert sum(whole, []) == first
    for w in range(3):
        part = zuring.CropSampler(a, (4, 10, 10), **kw)
        part.split_batches(w, 3)
        assert len(part) == 13 and batch_windows(part) == whole[w::3]
    for bad in ((3, 3), (-1, 2), (0, 0)):
        with pytest.raises(ValueError, match="split_batches"):
            zuring.CropSampler(a, (4, 10, 10), **kw).split_batches(*bad)
    # Two ranks: disjoint halves.
    r = [windows(zuring.CropSampler(a, (4, 10, 10), rank=k, world_size=2, **kw)) for k in (0, 1)]
    assert not set(r[0]) & set(r[1]) and len(r[0]) == len(r[1]) == 32
    assert set(r[0]) | set(r[1]) == set(first)


def test_readers_change_how_many_batches_are_read_at_once_not_what_they_hold(tmp_path):
    a = coord_array(tmp_path / "a", (16, 40, 40), (4, 10, 10), (8, 20, 20))
    kw = dict(batch_size=3, seed=4, mode="grid", drop_last=False, prefetch=4)

    def epoch(**more):
        s = zuring.CropSampler(a, (4, 10, 10), **kw, **more)
        return [(batch.copy(), [tuple(w) for w in s.last_windows]) for batch in s]

    default = epoch()
    assert len(default) == 22  # 64 tiles in batches of 3, the last one short
    for readers in (1, 3, 4):
        got = epoch(readers=readers)
        assert [w for _, w in got] == [w for _, w in default], readers
        for (b, _), (d, _) in zip(got, default):
            np.testing.assert_array_equal(b, d)
    for batch, windows in default:
        for crop, w in zip(batch, windows):
            np.testing.assert_array_equal(crop, a[w[0] : w[0] + 4, w[1] : w[1] + 10, w[2] : w[2] + 10])
    for bad in (0, -1, 5):
        with pytest.raises(ValueError, match=rf"readers must be between 1 and prefetch \(4\): got {bad}"):
            zuring.CropSampler(a, (4, 10, 10), **kw, readers=bad)
    # The batches being read count towards prefetch: prefetch 1 reads one at a time.
    with pytest.raises(ValueError, match=r"between 1 and prefetch \(1\): got 2"):
        zuring.CropSampler(a, (4, 10, 10), **{**kw, "prefetch": 1}, readers=2)


def test_ordered_mode_walks_time_in_order(tmp_path):
    a = coord_array(tmp_path / "a", (12, 20, 20), (3, 10, 10))
    s = zuring.CropSampler(a, (3, 20, 20), batch_size=2, mode="ordered", ordered_dim="time", stride=(1, 20, 20), drop_last=False)
    times = [w[0] for _ in s for w in s.last_windows]
    assert times == list(range(10))
    # Three ranks: 10 windows leave one out (3 each), or, padded, every rank walks 4: ranks 1
    # and 2 end with the series' first two windows again.
    kw = dict(batch_size=2, mode="ordered", ordered_dim="time", stride=(1, 20, 20), drop_last=False)
    dropped = [[w[0] for _ in t for w in t.last_windows] for t in (zuring.CropSampler(a, (3, 20, 20), rank=k, world_size=3, **kw) for k in range(3))]
    assert dropped == [[0, 3, 6], [1, 4, 7], [2, 5, 8]]
    padded = [zuring.CropSampler(a, (3, 20, 20), rank=k, world_size=3, pad_ranks=True, **kw) for k in range(3)]
    assert [len(t) for t in padded] == [2, 2, 2]
    assert [[w[0] for _ in t for w in t.last_windows] for t in padded] == [[0, 3, 6, 9], [1, 4, 7, 0], [2, 5, 8, 1]]


def test_construction_errors(tmp_path):
    a = coord_array(tmp_path / "a", (10, 20, 20), (5, 10, 10))
    with pytest.raises(ValueError, match=r'array "data": crop 30 along "y" is larger than the array \(20\)'):
        zuring.CropSampler(a, (2, 30, 5), batch_size=2)
    with pytest.raises(ValueError, match="band"):
        zuring.CropSampler(a, {"time": 2, "y": 5, "x": 5, "band": 1}, batch_size=2)
    with pytest.raises(ValueError, match='has no dimension "depth"'):
        zuring.CropSampler({"a": a}, {"time": 2, "y": 5, "x": 5}, batch_size=2, full_dims={"a": ["depth"]})
    with pytest.raises(TypeError):
        len(zuring.CropSampler(a, (2, 5, 5), batch_size=2))


def test_corrupt_chunk_mid_epoch(tmp_path):
    a = coord_array(tmp_path / "a", (4, 20, 20), (4, 10, 10))
    chunk = tmp_path / "a" / "c" / "0" / "1" / "0"
    data = bytearray(chunk.read_bytes())
    data[8] ^= 0xFF
    chunk.write_bytes(bytes(data))
    s = zuring.CropSampler(a, (4, 10, 10), batch_size=1, mode="ordered", ordered_dim="y", stride=(4, 10, 10), drop_last=False)
    seen = []
    with pytest.raises(zuring.CorruptDataError, match=r'array "data".*c/0/1/0'):
        for batch in s:
            seen.append(starts_of(batch)[0])
    # Iterating again continues after the failed batch.
    rest = [starts_of(b)[0] for b in s]
    assert seen == [(0, 0, 0), (0, 0, 10)]
    assert rest == [(0, 10, 10)]


def test_types_read_as_raw_bits_are_sampled(tmp_path):
    """Element types zarrs has no type for, which zuring reads as raw bits (records here, and
    tensorstore's float8_e4m3fn as ml_dtypes' type): the sampler reads through the arrays
    Python opened, so their batches are the arrays' own values."""
    fields = {"name": "struct", "configuration": {"fields": [{"name": "a", "data_type": "int16"}, {"name": "b", "data_type": "float32"}]}}
    types = [(fields, {"a": -1, "b": "NaN"}, np.dtype([("a", "<i2"), ("b", "<f4")]))]
    ml_dtypes = pytest.importorskip("ml_dtypes")
    types.append(("float8_e4m3fn", "NaN", np.dtype(ml_dtypes.float8_e4m3fn)))
    arrays = {}
    for i, (data_type, fill, dtype) in enumerate(types):
        meta = {"zarr_format": 3, "node_type": "array", "shape": [10, 12], "data_type": data_type,
                "chunk_grid": {"name": "regular", "configuration": {"chunk_shape": [4, 5]}},
                "chunk_key_encoding": {"name": "default"}, "fill_value": fill, "dimension_names": ["y", "x"],
                "codecs": [{"name": "bytes", "configuration": {"endian": "little"}}, {"name": "zstd", "configuration": {"level": 1, "checksum": False}}]}
        a = zuring.create_array(tmp_path / f"a{i}", meta)
        assert a.dtype == dtype
        values = np.zeros((10, 12), dtype=dtype)
        if dtype.names:
            values["a"] = np.arange(120).reshape(10, 12)
            values["b"] = values["a"] / 4
        else:
            values[...] = (np.arange(120).reshape(10, 12) % 16 / 4).astype(dtype)
        a[:9] = values[:9]  # row 9 stays fill
        arrays[f"a{i}"] = zuring.open_array(tmp_path / f"a{i}")
    s = zuring.CropSampler(arrays, {"y": 3, "x": 4}, batch_size=4, seed=5, samples_per_epoch=8)
    for batch in s:
        for name, a in arrays.items():
            assert batch[name].dtype == a.dtype and batch[name].shape == (4, 3, 4)
            for b, (y, x) in enumerate(s.last_windows):
                assert batch[name][b].tobytes() == a[y : y + 3, x : x + 4].tobytes()


def test_iterating_again_ends_the_older_iterator_only(tmp_path):
    """Iterating a sampler again ends an iterator still running (its next batch raises) and
    goes on from the batches served; dropping the older iterator later leaves the newer one
    reading (before, its clean-up stopped the newer one's prefetching: the newer iterator
    raised)."""
    import gc

    a = coord_array(tmp_path / "a", (8, 40, 40), (2, 10, 10))
    s = zuring.CropSampler(a, (2, 10, 10), batch_size=2, mode="grid", seed=1)
    every = [starts_of(b) for b in s]
    assert len(every) == len(s) == 32
    old = iter(s)
    first = starts_of(next(old))
    new = iter(s)
    second = starts_of(next(new))
    with pytest.raises(RuntimeError, match="iterated again"):
        next(old)
    del old
    gc.collect()
    rest = [starts_of(b) for b in new]
    assert [first, second, *rest] == every


def test_threads_iterating_one_sampler_at_once_never_hang(tmp_path):
    """Two threads start iterations of one sampler over and over: each start ends the
    iterator running, and neither thread waits on the other (before, a thread waiting
    for a batch held the sampler's lock while the other, holding the GIL, waited for it: both
    hung). Run in a child process so that a hang fails the test instead of stalling it."""
    import subprocess
    import sys

    coord_array(tmp_path / "a", (16, 64, 64), (2, 16, 16))
    script = f"""
import threading, zuring
s = zuring.CropSampler({str(tmp_path / "a")!r}, (2, 32, 32), batch_size=8, seed=1)
got, ended, done = [0, 0], [0], threading.Event()
def reader():
    while not done.is_set():
        try:
            for _ in s:
                got[0] += 1
                if done.is_set():
                    break
        except RuntimeError:
            ended[0] += 1
t = threading.Thread(target=reader)
t.start()
try:
    for _ in range(200):
        it = iter(s)
        try:
            next(it)
            got[1] += 1
        except RuntimeError:  # the other thread started an iteration meanwhile
            ended[0] += 1
        del it
finally:
    done.set()
    t.join()
print(got[0] > 0, got[1] > 0, ended[0] > 0)
"""
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["True", "True", "True"]


def test_a_forked_child_iterates_a_sampler_its_parent_was_iterating(tmp_path, fork_child):
    """A child forked while its parent iterates a sampler (DataLoader workers forked after the
    main process iterated it) gets an error, not a wait forever, from the parent's iterator,
    whose reader threads it does not have, and reads batches from an iteration of its own
    (before, starting one panicked joining the parent's threads)."""
    coord_array(tmp_path / "a", (16, 64, 64), (2, 16, 16))
    s = zuring.CropSampler(str(tmp_path / "a"), (2, 32, 32), batch_size=8, seed=1)
    it = iter(s)
    next(it)

    def child():
        try:
            next(it)
            return False
        except RuntimeError as err:
            told = "forked from" in str(err)
        return told and next(iter(s)).shape == (8, 2, 32, 32)

    assert fork_child(child, limit=30) == 0
    assert next(it).shape == (8, 2, 32, 32)  # the parent's iteration goes on


def test_an_iteration_started_as_a_batch_is_handed_over_reads_the_next(tmp_path):
    """Another thread starts an iteration just as the running one's batch comes back from
    Rust (a profile hook runs it there, at the native call's return): the newer iteration
    reads the batch after it, never the same one again (before, the count of batches served
    was kept in Python, after the native call, and the newer one read the same batch)."""
    import sys
    import threading

    coord_array(tmp_path / "a", (16, 64, 64), (2, 16, 16))
    s = zuring.CropSampler(str(tmp_path / "a"), (2, 8, 8), batch_size=4, seed=1, samples_per_epoch=64)
    every = [starts_of(b) for b in s]
    assert len(set(map(tuple, every))) == len(every) == 16
    s.load_state_dict({"epoch": 0, "batches_served": 3})
    newer = []

    def hook(frame, event, arg):
        if event == "c_return" and getattr(arg, "__self__", None) is s._native and arg.__name__ == "next":
            sys.setprofile(None)
            t = threading.Thread(target=lambda: newer.append(starts_of(next(iter(s)))))
            t.start()
            t.join()

    it = iter(s)
    sys.setprofile(hook)
    try:
        older = starts_of(next(it))
    finally:
        sys.setprofile(None)
    assert (older, newer) == (every[3], [every[4]])
    assert s.state_dict()["batches_served"] == 5
    with pytest.raises(RuntimeError, match="has ended"):
        next(it)


def test_bad_states_are_refused_before_any_read(tmp_path):
    """A state dict with a key missing, a negative or fractional count, or another seed is
    a ValueError naming the key, and the sampler keeps its place."""
    coord_array(tmp_path / "a", (16, 64, 64), (2, 16, 16))
    s = zuring.CropSampler(str(tmp_path / "a"), (2, 8, 8), batch_size=4, seed=1, samples_per_epoch=16)
    s.load_state_dict({"epoch": 2, "batches_served": 1})
    bad = [
        ({"epoch": 0}, r"CropSampler: the state has no \['batches_served'\]"),
        ({"epoch": 0, "batches_served": -1}, "batches_served must be a whole number >= 0, got -1"),
        ({"epoch": -3, "batches_served": 0}, "epoch must be a whole number >= 0, got -3"),
        ({"epoch": 0, "batches_served": 1.5}, "batches_served must be a whole number >= 0, got 1.5"),
        ({"epoch": 0, "batches_served": 0, "seed": 2}, "the state is for seed 2, this one has seed 1"),
    ]
    for state, message in bad:
        with pytest.raises(ValueError, match=message):
            s.load_state_dict(state)
    with pytest.raises(ValueError, match="epoch must be a whole number >= 0, got -1"):
        s.set_epoch(-1)
    assert s.state_dict()["epoch"] == 2 and s.state_dict()["batches_served"] == 1
    s.load_state_dict({"epoch": np.int64(2), "batches_served": np.int64(3)})
    assert len(list(s)) == 1
