"""zuring.Reader: batched range reads with zero-copy buffers."""

import gc
import time

import numpy as np
import pytest

import zuring


@pytest.fixture(params=["uring", "pread"])
def reader(request):
    return zuring.Reader(backend=request.param)


def test_read_ranges_in_order(tmp_path, reader):
    data = np.random.default_rng(0).integers(0, 256, 100_000, dtype=np.uint8).tobytes()
    f = tmp_path / "f.bin"
    f.write_bytes(data)
    bufs = reader.read_ranges([(f, 10, 100), (f, 0, 5), (f, 99_990, None), (str(f), 50_000, 0)])
    assert [bytes(b) for b in bufs] == [data[10:110], data[:5], data[99_990:], b""]
    view = memoryview(bufs[0])
    assert view.readonly and view.nbytes == 100
    arr = np.frombuffer(bufs[2], dtype=np.uint8)
    assert arr.tolist() == list(data[99_990:])
    with pytest.raises(BufferError):
        bufs[0].release()  # still exported by `view`
    view.release()
    bufs[0].release()
    assert bufs[0].released
    with pytest.raises(BufferError):
        memoryview(bufs[0])
    del arr
    gc.collect()


def test_errors_name_the_file(tmp_path, reader):
    f = tmp_path / "f.bin"
    f.write_bytes(b"0123456789")
    with pytest.raises(FileNotFoundError, match="missing"):
        reader.read_ranges([(tmp_path / "missing", 0, 1)])
    with pytest.raises(ValueError, match="past the end") as err:
        reader.read_ranges([(f, 0, 2), (f, 5, 10)])
    assert (err.value.batch, err.value.index) == (None, 1)


def test_requests_are_checked_before_any_read(tmp_path, reader):
    """Paths as str, bytes (os.fsencode) or os.PathLike, as Python's own file functions take
    them; a negative or too-large offset or length is a ValueError naming the request, a wrong
    type a TypeError, and nothing of the batch is read."""
    import os

    f = tmp_path / "f.bin"
    f.write_bytes(b"0123456789")
    bufs = reader.read_ranges([(os.fsencode(f), 1, 2), (f, 3, 1), (str(f), 8, None)])
    assert [bytes(b) for b in bufs] == [b"12", b"3", b"89"]
    batch = reader.submit([(os.fsencode(f), 4, 2)])
    assert reader.wait_get(timeout=10)[:2] == (batch, 0)
    for bad, kind, words in [
        ((f, -1, 2), ValueError, "read 1: the offset must be >= 0, got -1"),
        ((f, 0, -5), ValueError, "read 1: the length must be >= 0, got -5"),
        ((f, 2**70, 1), ValueError, "read 1: the offset 1180591620717411303424 is past any file"),
        ((f, 0, 2**64), ValueError, "read 1: the length 18446744073709551616 is past any file"),
        ((f, 1.5, 1), TypeError, "read 1: the offset must be an integer"),
        ((3, 0, 1), TypeError, "read 1: the path must be str, bytes or os.PathLike, not int"),
    ]:
        with pytest.raises(kind, match=words):
            reader.read_ranges([(f, 0, 1), bad])
        with pytest.raises(kind, match=words):
            reader.submit([(f, 0, 1), bad])
    assert reader.pending() == 0


def test_a_failed_read_says_which_it_was(tmp_path, reader):
    """With many reads in flight, a failure raised from wait_get / try_get carries the read's
    batch id and index; the other reads of its batch still arrive."""
    f = tmp_path / "f.bin"
    f.write_bytes(b"0123456789")
    first = reader.submit([(f, 0, 2)])
    batch = reader.submit([(f, 0, 3), (tmp_path / "missing", 0, 1), (f, 8, 5), (f, 7, None)])
    got, failed = {}, {}
    while reader.pending():
        try:
            item = reader.wait_get(timeout=10)
        except (FileNotFoundError, ValueError) as e:  # a missing file; a range past the end
            failed[(e.batch, e.index)] = type(e)
            continue
        got[item[:2]] = bytes(item[2])
    assert failed == {(batch, 1): FileNotFoundError, (batch, 2): ValueError}
    assert got == {(first, 0): b"01", (batch, 0): b"012", (batch, 3): b"789"}


def test_submit_and_poll(tmp_path, reader):
    files = []
    for i in range(5):
        f = tmp_path / f"{i}.bin"
        f.write_bytes(bytes([i]) * (1000 + i))
        files.append(f)
    b1 = reader.submit([(f, 0, None) for f in files[:3]])
    b2 = reader.submit([(f, 1, 10) for f in files[3:]])
    got = {}
    while True:
        item = reader.wait_get(timeout=10)
        if item is None:
            break
        batch, index, buf = item
        got[(batch, index)] = bytes(buf)
    assert reader.pending() == 0
    assert got == {
        **{(b1, i): bytes([i]) * (1000 + i) for i in range(3)},
        **{(b2, i): bytes([3 + i]) * 10 for i in range(2)},
    }
    assert reader.try_get() is None


def test_threads_waiting_on_many_batches_get_each_read_once(tmp_path, reader):
    """Threads submitting batches and waiting with wait_get at once, on one reader: each read of
    every batch comes back once, to one of them, with its bytes (the wait holds neither the GIL
    nor the reader's lock, and a result another thread took first is waited for again)."""
    import threading

    files = []
    for i in range(8):
        f = tmp_path / f"{i}.bin"
        f.write_bytes(np.random.default_rng(i).integers(0, 256, 50_000, dtype=np.uint8).tobytes())
        files.append(f)
    ranges = [[(files[(b + k) % 8], 97 * k, 1000 + k) for k in range(6)] for b in range(40)]
    batches, got, lock = {}, [], threading.Lock()

    def work(t):
        for b in range(t, 40, 4):
            with lock:
                batches[reader.submit(ranges[b])] = b
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            item = reader.wait_get(timeout=0.5)
            if item is None:
                # Nothing for half a second: done once no read is left (a slow moment of the
                # machine is waited out).
                if reader.pending() == 0:
                    break
                continue
            with lock:
                got.append((item[0], item[1], bytes(item[2])))

    threads = [threading.Thread(target=work, args=(t,)) for t in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert reader.pending() == 0
    assert len(got) == len({(b, i) for b, i, _ in got}) == 40 * 6
    for batch, index, data in got:
        path, offset, length = ranges[batches[batch]][index]
        assert data == path.read_bytes()[offset : offset + length]


def test_a_signal_ends_a_wait(tmp_path, reader):
    """A signal whose Python handler raises (Ctrl-C's KeyboardInterrupt, say) ends wait_get
    while a read is still under way; the read can be waited for again after."""
    import signal

    big = tmp_path / "sparse.bin"
    with open(big, "wb") as f:
        f.truncate(1 << 29)  # a second or so to read, and no disk space

    class Interrupted(Exception):
        pass

    waiting = [False]

    def raise_(*_):
        if waiting[0]:
            raise Interrupted
        # Not waiting yet (a slow moment of the machine): the signal comes again.
        signal.setitimer(signal.ITIMER_REAL, 0.002)

    old = signal.signal(signal.SIGALRM, raise_)
    try:
        batch = reader.submit([(big, 0, None)])
        signal.setitimer(signal.ITIMER_REAL, 0.002)
        with pytest.raises(Interrupted):
            waiting[0] = True
            reader.wait_get()
        waiting[0] = False
        assert reader.pending() == 1
        item = reader.wait_get(timeout=60)
        assert item[:2] == (batch, 0) and len(item[2]) == 1 << 29
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)
