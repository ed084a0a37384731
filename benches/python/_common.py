"""Helpers shared by the Python benchmarks: page-cache control."""

from __future__ import annotations

import os
import subprocess


def drop_caches() -> bool:
    """Flush and drop the page cache (root only); whether it worked."""
    try:
        subprocess.run(["sync"], check=True)
        with open("/proc/sys/vm/drop_caches", "w") as f:
            f.write("3")
        return True
    except OSError:
        return False


def warm(path: str) -> None:
    """Read every file under `path` once, so that it sits in the page cache."""
    for root, _, files in os.walk(path):
        for name in files:
            with open(os.path.join(root, name), "rb") as f:
                while f.read(1 << 20):
                    pass
