"""pytest plugin for zarr-python's own suite run with zuring's pipeline: at the end of each test
process, write how often zuring's Rust paths ran (``zuring.pipeline.STATS``) to
``$ZURING_SPY_DIR/<pid>.json``; ``scripts/test-zarr-suite.sh`` adds them up and fails unless
reads and writes ran in Rust, on local files and through other stores."""

import json
import os


def pytest_sessionfinish(session, exitstatus):
    out = os.environ.get("ZURING_SPY_DIR")
    if not out:
        return
    try:
        from zuring.pipeline import STATS
    except ImportError:  # pragma: no cover - zuring not importable: nothing ran
        STATS = {}
    with open(os.path.join(out, f"{os.getpid()}.json"), "w") as f:
        json.dump(STATS, f)
