"""zuring.torch.CropDataset in PyTorch DataLoaders: workers and ranks split the epoch."""

import multiprocessing as mp

import numpy as np
import pytest

torch = pytest.importorskip("torch")
from torch.utils.data import DataLoader  # noqa: E402

import zuring  # noqa: E402
from zuring.torch import CropDataset  # noqa: E402

from test_sampler import coord_array, starts_of  # noqa: E402


@pytest.fixture(scope="module")
def arr(tmp_path_factory):
    return coord_array(tmp_path_factory.mktemp("t") / "a", (8, 40, 40), (4, 10, 10), (8, 20, 20))


def windows_of(loader):
    out = []
    for batch in loader:
        assert isinstance(batch, torch.Tensor) and batch.dtype == torch.int64
        out.extend(starts_of(batch.numpy()))
    return out


ALL = {(t, y, x) for t in (0, 4) for y in range(0, 40, 10) for x in range(0, 40, 10)}


@pytest.mark.parametrize("workers,context", [(0, None), (2, "fork"), (2, "spawn")])
def test_dataloader_workers_split_the_epoch(arr, workers, context):
    ds = CropDataset(arr, (4, 10, 10), batch_size=4, mode="grid", seed=2)
    kwargs = {"multiprocessing_context": mp.get_context(context)} if context else {}
    loader = DataLoader(ds, batch_size=None, num_workers=workers, **kwargs)
    got = windows_of(loader)
    assert len(got) == len(set(got)), "no window twice"
    assert set(got) == ALL
    # Another epoch: the same windows in another order.
    ds.set_epoch(1)
    again = windows_of(DataLoader(ds, batch_size=None, num_workers=workers, **kwargs))
    assert set(again) == ALL and again != got


def batches_of(loader):
    return [starts_of(b.numpy()) for b in loader]


@pytest.mark.parametrize("workers,context", [(2, "fork"), (3, "spawn")])
@pytest.mark.parametrize("mode,drop_last", [("grid", False), ("grid", True), ("random", True)])
def test_workers_deliver_the_batches_without_workers(arr, workers, context, mode, drop_last):
    """Workers read alternate batches of the rank's epoch and the DataLoader hands them out in
    turn: the same batches in the same order as without workers, as many as len() says (32 grid
    windows in batches of 5: 6 full batches and a short one, uneven across the workers)."""
    kwargs = dict(batch_size=5, mode=mode, seed=3, drop_last=drop_last)
    if mode == "random":
        kwargs["samples_per_epoch"] = 23
    ds = CropDataset(arr, (4, 10, 10), **kwargs)
    expected = batches_of(DataLoader(ds, batch_size=None, num_workers=0))
    got = batches_of(DataLoader(ds, batch_size=None, num_workers=workers, multiprocessing_context=mp.get_context(context)))
    assert got == expected
    assert len(got) == len(ds) == {("grid", False): 7, ("grid", True): 6, ("random", True): 4}[(mode, drop_last)]


@pytest.mark.parametrize("context", ["fork", "spawn"])
def test_set_epoch_reaches_persistent_workers(arr, context):
    """Persistent workers keep their copy of the dataset across epochs: each epoch must still
    bring that epoch's windows (the ones a loader without workers gives), not epoch 0's again."""
    ds = CropDataset(arr, (4, 10, 10), batch_size=4, mode="random", samples_per_epoch=16, seed=5)
    loader = DataLoader(ds, batch_size=None, num_workers=2, persistent_workers=True, multiprocessing_context=mp.get_context(context))
    epochs = []
    for epoch in range(3):
        ds.set_epoch(epoch)
        got = windows_of(loader)
        expected = windows_of(DataLoader(ds, batch_size=None, num_workers=0))
        assert len(expected) == 16
        assert sorted(got) == sorted(expected), f"epoch {epoch}"
        epochs.append(sorted(got))
    assert epochs[0] != epochs[1] != epochs[2]
    assert ds.epoch == 2


def test_ddp_ranks_are_disjoint(arr):
    seen = []
    for rank in range(2):
        ds = CropDataset(arr, (4, 10, 10), batch_size=4, mode="grid", seed=2, rank=rank, world_size=2)
        seen.append(windows_of(DataLoader(ds, batch_size=None, num_workers=2)))
    assert not set(seen[0]) & set(seen[1])
    assert set(seen[0]) | set(seen[1]) == ALL
    # 32 tiles over 3 ranks: 10 each and 2 left out, or (pad_ranks) 11 each, all 32 seen, and
    # 2 seen twice.
    for pad, each, union in ((False, 10, 30), (True, 11, 32)):
        shares = [windows_of(DataLoader(CropDataset(arr, (4, 10, 10), batch_size=4, mode="grid", seed=2, rank=r, world_size=3, pad_ranks=pad, drop_last=False), batch_size=None, num_workers=2)) for r in range(3)]
        assert [len(w) for w in shares] == [each] * 3, pad
        assert len(set().union(*shares)) == union, pad


def _ddp_rank(rank, world, path, init, out, context):
    import torch.distributed as dist

    dist.init_process_group("gloo", init_method=init, rank=rank, world_size=world)
    try:
        # No rank / world_size given: they default from torch.distributed.
        ds = CropDataset(path, (4, 10, 10), batch_size=4, mode="grid", seed=2)
        loader = DataLoader(ds, batch_size=None, num_workers=2, multiprocessing_context=mp.get_context(context))
        np.save(out / f"{rank}.npy", np.array(windows_of(loader)))
    finally:
        dist.destroy_process_group()


@pytest.mark.parametrize("context", ["fork", "spawn"])
def test_ddp_default_ranks_reach_workers(arr, tmp_path, context):
    """Under DDP, ranks split the epoch by default, also in spawned DataLoader workers (where
    torch.distributed is not initialised)."""
    torch.multiprocessing.spawn(_ddp_rank, args=(2, str(arr.path), f"file://{tmp_path}/init", tmp_path, context), nprocs=2)
    seen = [{tuple(w) for w in np.load(tmp_path / f"{rank}.npy")} for rank in range(2)]
    assert seen[0] and seen[1] and not seen[0] & seen[1]
    assert seen[0] | seen[1] == ALL


def test_pin_memory_and_dicts(arr, tmp_path):
    other = coord_array(tmp_path / "b", (8, 40, 40), (8, 20, 20), dtype="float32")
    ds = CropDataset({"a": arr, "b": other}, {"time": 4, "y": 10, "x": 10}, batch_size=2, samples_per_epoch=8)
    batches = list(DataLoader(ds, batch_size=None, num_workers=0, pin_memory=torch.cuda.is_available()))
    assert len(batches) == 4
    for b in batches:
        assert b["a"].shape == (2, 4, 10, 10) and b["b"].dtype == torch.float32
        np.testing.assert_array_equal(b["a"].numpy().astype("float32"), b["b"].numpy())


def test_machine_learning_types(tmp_path):
    """A bfloat16 array (stored big-endian) and an 8-bit float one read jointly: numpy batches
    of ml_dtypes' types, tensors of torch's same types (bfloat16, float8_e5m2) with the same
    values; a type torch lacks (float8_e4m3) is refused at construction unless numpy batches
    are asked for."""
    ml_dtypes = pytest.importorskip("ml_dtypes")

    def make(name, data_type, values):
        meta = {"zarr_format": 3, "node_type": "array", "shape": list(values.shape), "data_type": data_type,
                "chunk_grid": {"name": "regular", "configuration": {"chunk_shape": [4, 8]}},
                "chunk_key_encoding": {"name": "default"}, "fill_value": "NaN", "dimension_names": ["y", "x"],
                "codecs": [{"name": "bytes", "configuration": {"endian": "big"}}, {"name": "zstd", "configuration": {"level": 1, "checksum": False}}]}
        a = zuring.create_array(tmp_path / name, meta)
        a[...] = values
        return a

    # Exact in both types: multiples of 1/4 below 16 (bfloat16 keeps 8 significant bits,
    # float8_e5m2 3: 0.25 x 0..7 scaled by powers of two).
    y, x = np.meshgrid(np.arange(12), np.arange(16), indexing="ij")
    wide = (y * 16 + x) / 8.0
    small = np.where((y + x) % 2 == 0, 1.0, -0.25) * 2.0 ** (y % 5)
    bf = make("bf", "bfloat16", wide.astype(ml_dtypes.bfloat16))
    f8 = make("f8", "float8_e5m2", small.astype(ml_dtypes.float8_e5m2))
    assert bf.dtype == np.dtype(ml_dtypes.bfloat16) and f8.dtype == np.dtype(ml_dtypes.float8_e5m2)
    kwargs = dict(batch_size=3, seed=4, samples_per_epoch=6)
    s = zuring.CropSampler({"bf": bf, "f8": f8}, {"y": 4, "x": 5}, **kwargs)
    for batch in s:
        assert batch["bf"].dtype == bf.dtype and batch["f8"].dtype == f8.dtype
        for b, (wy, wx) in enumerate(s.last_windows):
            np.testing.assert_array_equal(batch["bf"][b].astype(np.float64), wide[wy : wy + 4, wx : wx + 5])
            np.testing.assert_array_equal(batch["f8"][b].astype(np.float64), small[wy : wy + 4, wx : wx + 5])
    ds = CropDataset({"bf": bf, "f8": f8}, {"y": 4, "x": 5}, **kwargs)
    tensors = list(DataLoader(ds, batch_size=None, num_workers=0))
    batches = list(zuring.CropSampler({"bf": bf, "f8": f8}, {"y": 4, "x": 5}, **kwargs))
    assert len(tensors) == len(batches) == 2
    for t, n in zip(tensors, batches):
        assert t["bf"].dtype == torch.bfloat16 and t["f8"].dtype == torch.float8_e5m2
        np.testing.assert_array_equal(t["bf"].double().numpy(), n["bf"].astype(np.float64))
        np.testing.assert_array_equal(t["f8"].double().numpy(), n["f8"].astype(np.float64))
    e4m3 = make("e4m3", "float8_e4m3", small.astype(ml_dtypes.float8_e4m3))
    with pytest.raises(TypeError, match="'data' is float8_e4m3"):
        CropDataset(e4m3, (4, 5), **kwargs)
    got = next(iter(CropDataset(e4m3, (4, 5), as_tensors=False, **kwargs)))
    assert got.dtype == np.dtype(ml_dtypes.float8_e4m3) and got.shape == (3, 4, 5)


def test_a_plain_loader_without_workers_resumes_from_the_datasets_state(arr):
    """num_workers=0: the dataset's state after k batches, loaded into a new dataset, gives
    the rest of the epoch (the batches an uninterrupted loop gets after those k), once."""
    kwargs = dict(batch_size=3, mode="random", samples_per_epoch=30, seed=4)
    ds = CropDataset(arr, (4, 10, 10), **kwargs)
    ds.set_epoch(2)
    whole = batches_of(DataLoader(ds, batch_size=None))
    assert len(whole) == 10
    it = iter(DataLoader(ds, batch_size=None))
    head = [starts_of(next(it).numpy()) for _ in range(4)]
    state = ds.state_dict()
    assert (state["epoch"], state["batches_served"], state["worker"], state["workers"]) == (2, 4, 0, 1)
    resumed = CropDataset(arr, (4, 10, 10), **kwargs)
    resumed.load_state_dict(state)
    assert resumed.state_dict() == state
    rest = batches_of(DataLoader(resumed, batch_size=None))
    assert head + rest == whole
    # The next iteration starts its epoch (the state's, now the dataset's) at the first batch.
    assert batches_of(DataLoader(resumed, batch_size=None)) == whole
    with pytest.raises(ValueError, match="CropDataset: the state is for seed 4, this one has seed 5"):
        CropDataset(arr, (4, 10, 10), **{**kwargs, "seed": 5}).load_state_dict(state)


def take_then_resume(make_loader, dataset, fresh, n):
    """``n`` batches from a (stateful) loader over ``dataset``, then the loader's state loaded
    into a new loader over ``fresh``: the ``n`` batches and all the new loader gives."""
    first = make_loader(dataset)
    it = iter(first)
    head = [starts_of(next(it).numpy()) for _ in range(n)]
    state = first.state_dict()
    del it, first
    second = make_loader(fresh)
    second.load_state_dict(state)
    return head, batches_of(second)


@pytest.mark.parametrize("workers,context", [(0, None), (2, "fork"), (2, "spawn")])
def test_a_stateful_dataloader_resumes_mid_epoch(arr, workers, context):
    """torchdata's StatefulDataLoader saves each worker's state (the dataset's) with its own
    and resumes every worker where it was: the resumed loader gives exactly the batches an
    uninterrupted one gives after those already taken (workers alternate batches, so each
    worker's place matters)."""
    from torchdata.stateful_dataloader import StatefulDataLoader

    kwargs = dict(batch_size=2, mode="grid", seed=6)
    mp_kwargs = {"multiprocessing_context": mp.get_context(context)} if context else {}

    def loader(ds):
        return StatefulDataLoader(ds, batch_size=None, num_workers=workers, **mp_kwargs)

    ds = CropDataset(arr, (4, 10, 10), **kwargs)
    whole = batches_of(loader(ds))
    assert len(whole) == 16 and len({w for b in whole for w in b}) == 32
    head, rest = take_then_resume(loader, ds, CropDataset(arr, (4, 10, 10), **kwargs), 5)
    assert head + rest == whole


def test_a_stateful_dataloader_resumes_a_later_epoch_of_persistent_workers(arr):
    """Persistent workers keep their dataset across epochs: a state saved as epoch 1 starts
    (no batch taken yet) resumes epoch 1, not the epoch those workers iterated before."""
    from torchdata.stateful_dataloader import StatefulDataLoader

    kwargs = dict(batch_size=2, mode="random", samples_per_epoch=16, seed=7)

    def loader(ds):
        return StatefulDataLoader(ds, batch_size=None, num_workers=2, persistent_workers=True, multiprocessing_context=mp.get_context("fork"))

    ds = CropDataset(arr, (4, 10, 10), **kwargs)
    first = loader(ds)
    epoch0 = batches_of(first)
    ds.set_epoch(1)
    it = iter(first)
    state = first.state_dict()
    del it
    resumed_ds = CropDataset(arr, (4, 10, 10), **kwargs)
    resumed_ds.set_epoch(1)
    second = loader(resumed_ds)
    second.load_state_dict(state)
    epoch1 = batches_of(second)
    assert epoch1 == batches_of(DataLoader(resumed_ds, batch_size=None)) and epoch1 != epoch0


@pytest.mark.parametrize("workers,context", [(0, None), (2, "fork"), (3, "spawn")])
def test_a_plain_loader_resumes_from_the_batches_taken(arr, workers, context):
    """A state made by hand from the batches the loop took ({"epoch", "batches_served"}):
    a plain DataLoader with any number of workers gives the rest of that epoch in order (each
    worker reads its share of the batches after them); past the end, nothing."""
    kwargs = dict(batch_size=2, mode="random", samples_per_epoch=30, seed=8)
    mp_kwargs = {"multiprocessing_context": mp.get_context(context)} if context else {}
    ds = CropDataset(arr, (4, 10, 10), **kwargs)
    ds.set_epoch(3)
    whole = batches_of(DataLoader(ds, batch_size=None))
    assert len(whole) == 15
    resumed = CropDataset(arr, (4, 10, 10), **kwargs)
    resumed.load_state_dict({"epoch": 3, "batches_served": 5})
    assert batches_of(DataLoader(resumed, batch_size=None, num_workers=workers, **mp_kwargs)) == whole[5:]
    resumed.load_state_dict({"epoch": 3, "batches_served": 15})
    assert batches_of(DataLoader(resumed, batch_size=None, num_workers=workers, **mp_kwargs)) == []
    with pytest.raises(ValueError, match="batches_served must be a whole number >= 0, got -1"):
        resumed.load_state_dict({"epoch": 3, "batches_served": -1})


def epochs_of(arr, kwargs, *epochs):
    """Each epoch's batches, as a loader without workers gives them."""
    ds = CropDataset(arr, (4, 10, 10), **kwargs)
    whole = []
    for epoch in epochs:
        ds.set_epoch(epoch)
        whole.append(batches_of(DataLoader(ds, batch_size=None)))
    return whole


@pytest.mark.parametrize("workers,context", [(0, None), (2, "fork"), (2, "spawn")])
def test_a_loaded_state_resumes_only_the_next_iteration(arr, workers, context):
    """A state loaded in the main process resumes the loader's next iteration, in all its
    workers, and no later one: the loader iterated again gives the state's epoch (now the
    dataset's) from its first batch, then the epoch set, whole, also with more workers than the
    iteration that resumed."""
    kwargs = dict(batch_size=2, mode="random", samples_per_epoch=30, seed=8)
    mp_kwargs = {"multiprocessing_context": mp.get_context(context)} if context else {}
    e3, e4 = epochs_of(arr, kwargs, 3, 4)
    ds = CropDataset(arr, (4, 10, 10), **kwargs)
    ds.load_state_dict({"epoch": 3, "batches_served": 5})
    assert ds.epoch == 3 and ds.state_dict()["batches_served"] == 5
    loader = DataLoader(ds, batch_size=None, num_workers=workers, **mp_kwargs)
    assert batches_of(loader) == e3[5:]
    # Taken: the main process's state is the epoch's start again.
    assert ds.state_dict()["batches_served"] == 0
    assert batches_of(loader) == e3
    ds.set_epoch(4)
    assert batches_of(loader) == e4
    more = DataLoader(ds, batch_size=None, num_workers=workers + 1, multiprocessing_context=mp.get_context(context or "fork"))
    assert batches_of(more) == e4
    # A state loaded again resumes again, in a loader of another worker count too.
    ds.load_state_dict({"epoch": 4, "batches_served": 7})
    assert batches_of(more) == e4[7:]
    assert batches_of(loader) == e4


@pytest.mark.parametrize("context", ["fork", "spawn"])
def test_a_state_loaded_after_persistent_workers_started_reaches_them(arr, context):
    """Persistent workers keep the copy of the dataset they started with: a state the main
    process loads after that still resumes their next iteration, once."""
    kwargs = dict(batch_size=2, mode="random", samples_per_epoch=16, seed=7)
    e0, e2 = epochs_of(arr, kwargs, 0, 2)
    ds = CropDataset(arr, (4, 10, 10), **kwargs)
    loader = DataLoader(ds, batch_size=None, num_workers=2, persistent_workers=True, multiprocessing_context=mp.get_context(context))
    assert batches_of(loader) == e0
    ds.load_state_dict({"epoch": 2, "batches_served": 3})
    assert batches_of(loader) == e2[3:]
    assert batches_of(loader) == e2
    ds.load_state_dict({"epoch": 0, "batches_served": 6})
    assert batches_of(loader) == e0[6:]


def test_the_state_of_a_resumed_iteration_counts_from_the_epochs_start(arr):
    """Resumed at batch 5 and 3 batches on, the state says 8 (and resumes there, also under
    torchdata with workers, whose per-worker states keep where the iteration began); at the
    epoch's end, 0 again."""
    from torchdata.stateful_dataloader import StatefulDataLoader

    kwargs = dict(batch_size=2, mode="grid", seed=9)
    whole = batches_of(DataLoader(CropDataset(arr, (4, 10, 10), **kwargs), batch_size=None))
    ds = CropDataset(arr, (4, 10, 10), **kwargs)
    ds.load_state_dict({"epoch": 0, "batches_served": 5})
    it = iter(DataLoader(ds, batch_size=None))
    got = [starts_of(next(it).numpy()) for _ in range(3)]
    assert got == whole[5:8] and ds.state_dict()["batches_served"] == 8
    again = CropDataset(arr, (4, 10, 10), **kwargs)
    again.load_state_dict(ds.state_dict())
    # A state loaded over an iteration's is the one the next iteration starts from.
    ds.load_state_dict({"epoch": 0, "batches_served": 2})
    assert ds.state_dict()["batches_served"] == 2
    assert batches_of(DataLoader(again, batch_size=None)) == whole[8:]
    assert again.state_dict()["batches_served"] == 0

    def loader(dataset):
        return StatefulDataLoader(dataset, batch_size=None, num_workers=2, multiprocessing_context=mp.get_context("fork"))

    ds = CropDataset(arr, (4, 10, 10), **kwargs)
    ds.load_state_dict({"epoch": 0, "batches_served": 5})
    head, rest = take_then_resume(loader, ds, CropDataset(arr, (4, 10, 10), **kwargs), 3)
    assert head + rest == whole[5:]


@pytest.mark.parametrize("workers,as_tensors", [(0, True), (2, True), (None, False)])
def test_windows_come_with_their_batches(arr, workers, as_tensors):
    """windows=True: each batch with its crops' starts (the coordinates the crops' values
    encode), through workers too, as tensors or numpy arrays."""
    ds = CropDataset(arr, (4, 10, 10), batch_size=4, mode="grid", seed=3, windows=True, as_tensors=as_tensors)
    kind = torch.Tensor if as_tensors else np.ndarray
    # (A DataLoader makes numpy batches tensors: the numpy case is iterated directly.)
    batches = DataLoader(ds, batch_size=None, num_workers=workers, multiprocessing_context=mp.get_context("fork") if workers else None) if as_tensors else ds
    seen = 0
    for batch, windows in batches:
        assert isinstance(batch, kind) and isinstance(windows, kind)
        assert windows.dtype in (torch.int64, np.int64) and tuple(windows.shape) == (batch.shape[0], 3)
        values = batch.numpy() if as_tensors else batch
        assert [tuple(w) for w in windows.tolist()] == starts_of(values)
        seen += batch.shape[0]
    assert seen == 32


def test_a_state_from_another_worker_count_is_refused(arr):
    ds = CropDataset(arr, (4, 10, 10), batch_size=2, mode="grid", seed=6)
    ds.load_state_dict({"epoch": 0, "batches_served": 3, "seed": 6, "worker": 1, "workers": 2})
    with pytest.raises(ValueError, match="worker 1's of 2, this is worker 0 of 1"):
        next(iter(DataLoader(ds, batch_size=None)))
    with pytest.raises(ValueError, match="batches_served"):
        ds.load_state_dict({"epoch": 0})
    with pytest.raises(ValueError, match="the state's worker 2 is not one of its 2 workers"):
        ds.load_state_dict({"epoch": 0, "batches_served": 0, "worker": 2, "workers": 2})
    with pytest.raises(ValueError, match="epoch must be a whole number >= 0, got -1"):
        ds.set_epoch(-1)
