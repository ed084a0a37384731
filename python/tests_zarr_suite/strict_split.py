"""pytest plugin for zarr-python's own suite run with zuring's pipeline: leave out of the
non-strict run the tests that the strict run covers, so no test runs twice.

With ``codec_pipeline.strict`` on, a fallback to zarr's pipeline raises ``UnsupportedError``
instead; a test that passes there took none (or expected an error and got zuring's), so
running it again without strict mode would take zuring's path again.
``scripts/test-zarr-suite.sh`` sets ``ZURING_STRICT_COVERED`` (the files and folders the strict
run selects, one per line) and ``ZURING_STRICT_UNSUPPORTED`` (the node id prefixes the strict
run leaves out, one per line); tests under the first and not under the second are deselected
here. Without ``ZURING_STRICT_COVERED`` the plugin does nothing."""

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
