#!/usr/bin/env bash
# zarr-python's own test suite (from its sdist) with zuring's pipeline selected
# (ZARR_CODEC_PIPELINE__PATH): everything that passes with zarr's default pipeline must pass,
# except the differences listed, with reasons, in python/tests_zarr_suite/differences-<version>.txt.
# A spy plugin proves reads and writes ran in Rust, on LocalStore and through other stores.
#
#   scripts/test-zarr-suite.sh          zarr 3.1.6 on Python 3.11 (.venv)
#   scripts/test-zarr-suite.sh 3.4.2    zarr 3.4.2 (the newest) on CPython 3.13 (.venv313)
#
# The tests that read and write stored data (array, indexing, codec, v2 and API tests; on 3.4.2
# also resize and the pipeline parity tests) run with codec_pipeline.strict on, less the tests
# of codecs and chunk grids zuring leaves to zarr-python (strict-unsupported-<version>.txt):
# there, anything zuring would hand to zarr's own pipeline fails instead. Every other test runs
# once without strict mode (strict_split.py: a test that passes in strict mode took no
# fallback, so a second run without it would take the same path).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
VERSION=${1:-3.1.6}
case "$VERSION" in
  3.1.6) PY="$ROOT/.venv/bin/python" ;;
  3.4.2)
    bash scripts/setup-venv313.sh
    PY="$ROOT/.venv313/bin/python" ;;
  *) echo "usage: $0 [3.1.6|3.4.2]" >&2; exit 2 ;;
esac
SDIST=.cache/zarr-$VERSION
if [ ! -f "$SDIST/tests/conftest.py" ]; then
  mkdir -p .cache/sdist
  .venv/bin/python -m pip download -q --no-deps --no-binary :all: --ignore-requires-python "zarr==$VERSION" -d .cache/sdist
  tar xzf ".cache/sdist/zarr-$VERSION.tar.gz" -C .cache
fi
# The node ids (or prefixes) a list names: the first word of each line that is not a comment.
ids() {
  grep -v '^\s*#' "$1" | grep -v '^\s*$' | while read -r id _; do printf '%s\n' "$id"; done
}
deselect() {
  ids "$1" | while read -r id; do printf -- '--deselect\n%s\n' "$id"; done
}
mapfile -t DESELECT < <(deselect "python/tests_zarr_suite/differences-$VERSION.txt")
SPY=$(mktemp -d)
trap 'rm -rf "$SPY"' EXIT
# The suite turns warnings into errors; zuring's one-time fallback warning is by design.
# Docstring and documentation tests do not touch the pipeline (and the docstring test collects
# differently in each xdist worker).
COMMON=(-p no:cacheprovider -p spy_plugin -p strict_split -n 2 --dist worksteal -q -W "ignore:zuring:RuntimeWarning"
  --ignore=tests/test_docs.py --ignore=tests/test_examples.py --ignore=tests/test_api/test_synchronous.py)
if [ "$VERSION" = 3.4.2 ]; then
  # 3.4.2's benchmark routines (run as tests) take over 2 minutes on 2 cores; they pass with
  # zuring's pipeline (`pytest tests/benchmarks` in the sdist) but are left out of every run.
  COMMON+=(--ignore=tests/benchmarks)
fi
export PYTHONHASHSEED=0 PYTHONPATH="$ROOT/python/tests_zarr_suite" ZURING_SPY_DIR="$SPY"
export ZARR_CODEC_PIPELINE__PATH=zuring.ZuringCodecPipeline
STRICT_TESTS=(tests/test_array.py tests/test_indexing.py tests/test_codecs tests/test_v2.py tests/test_api.py)
if [ "$VERSION" = 3.4.2 ]; then
  STRICT_TESTS+=(tests/test_resize.py tests/test_fastpath_equivalence.py tests/test_pipeline_parity.py
    tests/test_unified_chunk_grid.py)
fi
UNSUPPORTED=python/tests_zarr_suite/strict-unsupported-$VERSION.txt
mapfile -t STRICT < <(deselect "$UNSUPPORTED")
echo "zarr $VERSION's suite without strict mode (all but what the strict run covers):"
(cd "$SDIST" && ZURING_STRICT_COVERED="$(printf '%s\n' "${STRICT_TESTS[@]}")" \
  ZURING_STRICT_UNSUPPORTED="$(ids "$ROOT/$UNSUPPORTED")" \
  "$PY" -m pytest tests "${COMMON[@]}" "${DESELECT[@]}")
echo "zarr $VERSION's suite in strict mode:"
(cd "$SDIST" && ZARR_CODEC_PIPELINE__STRICT=True "$PY" -m pytest "${STRICT_TESTS[@]}" \
  "${COMMON[@]}" "${DESELECT[@]}" "${STRICT[@]}")
"$PY" - "$SPY" <<'PY'
import json, pathlib, sys
total = {}
for f in pathlib.Path(sys.argv[1]).glob("*.json"):
    for k, v in json.loads(f.read_text()).items():
        total[k] = total.get(k, 0) + v
print("zuring paths taken in zarr's suite:", total)
need = ("native_reads", "native_writes", "store_fetch_calls", "store_writes")
missing = [k for k in need if total.get(k, 0) == 0]
sys.exit(f"zuring's Rust paths did not run: {missing}" if missing else 0)
PY
