import pytest


@pytest.fixture
def tmp_store(tmp_path):
    return tmp_path / "array.zarr"


@pytest.fixture
def fork_child():
    """``fork_child(child, limit)``: fork; in the child run ``child()`` and leave with ``os._exit``
    (0 when it returned true, 3 when false or raising), running none of the parent's clean-up.
    Returns the child's exit code if it exits within ``limit`` seconds, else None (it hung and
    is killed)."""
    import os
    import time
    import warnings

    def run(child, limit=20):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)  # fork with threads running
            pid = os.fork()
        if pid == 0:
            ok = False
            try:
                ok = bool(child())
            finally:
                os._exit(0 if ok else 3)
        deadline = time.monotonic() + limit
        while (done := os.waitpid(pid, os.WNOHANG))[0] == 0 and time.monotonic() < deadline:
            time.sleep(0.005)
        if done[0] == 0:
            os.kill(pid, 9)
            os.waitpid(pid, 0)
            return None
        return os.waitstatus_to_exitcode(done[1])

    return run
