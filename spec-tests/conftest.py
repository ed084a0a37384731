"""Collect each test's outcome per conformance row, for spec-tests/report.py."""

import json
from pathlib import Path

import pytest

RESULTS: dict[str, dict] = {}
FIXTURES = Path(__file__).parents[1] / "fixtures" / "data"
# The tests and test files this run collected (before any deselection).
COLLECTED: set[str] = set()
COLLECTED_FILES: set[str] = set()


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(items):
    for item in items:
        COLLECTED.add(item.nodeid)
        COLLECTED_FILES.add(item.nodeid.split("::", 1)[0])
        rows = getattr(item.function, "rows", None)
        if rows is None and hasattr(item, "callspec") and "case" in item.callspec.params:
            case = item.callspec.params["case"]
            meta = FIXTURES / case / "case.json"
            rows = json.loads(meta.read_text())["rows"] if meta.exists() else []
        item.user_properties.append(("rows", rows or []))


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if report.when == "call" or (report.when == "setup" and report.outcome != "passed"):
        rows = dict(item.user_properties).get("rows", [])
        RESULTS[item.nodeid] = {"rows": rows, "outcome": report.outcome, "message": str(report.longrepr)[-300:] if report.failed else ""}


def pytest_sessionfinish(session):
    out = Path(__file__).parent / "results.json"
    previous = json.loads(out.read_text()) if out.exists() else {}
    # Results of earlier runs stay (a run of one file, or with -k, updates only its own); a
    # test no longer in a file this run collected (removed, renamed) goes.
    gone = lambda k: k.split("::", 1)[0] in COLLECTED_FILES and k not in COLLECTED  # noqa: E731
    previous = {k: v for k, v in previous.items() if not gone(k)}
    previous.update(RESULTS)
    out.write_text(json.dumps(previous, indent=1, sort_keys=True))
