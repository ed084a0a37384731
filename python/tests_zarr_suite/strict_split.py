"""pytest plugin for zarr-python's own suite run with zuring's pipeline: leave out of the
non-strict run the tests that the strict run covers, so no test runs twice.

A test that passes with ``codec_pipeline.strict`` on ran wholly through zuring (a fallback would
have raised ``UnsupportedError``), so running it again without strict mode takes the same path.
``scripts/test-zarr-suite.sh`` sets ``ZURING_STRICT_COVERED`` (paths, one per line:
the files the strict run selects) and ``ZURING_STRICT_UNSUPPORTED`` (the node id prefixes the
strict run leaves out, one per line); tests under the first and not under the second are
deselected here. Without ``ZURING_STRICT_COVERED`` the plugin does nothing."""

import os


def _prefixes(name):
    return tuple(line for line in os.environ.get(name, "").splitlines() if line)


def pytest_collection_modifyitems(config, items):
    # A file's tests, or a folder's: "tests/test_v2.py::..." or "tests/test_codecs/...".
    covered = tuple(path + sep for path in _prefixes("ZURING_STRICT_COVERED") for sep in ("::", "/"))
    if not covered:
        return
    unsupported = _prefixes("ZURING_STRICT_UNSUPPORTED")
    keep, drop = [], []
    for item in items:
        strict = item.nodeid.startswith(covered) and not item.nodeid.startswith(unsupported)
        (drop if strict else keep).append(item)
    if drop:
        config.hook.pytest_deselected(items=drop)
        items[:] = keep
