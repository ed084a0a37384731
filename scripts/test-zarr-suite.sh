#!/usr/bin/env bash
# zarr-python 3.1.6's own test suite (from its sdist) with zuring's pipeline selected
# (ZARR_CODEC_PIPELINE__PATH), then again with codec_pipeline.strict on for the tests that read
# and write stored data (array, indexing, codec, v2 and API tests): everything that passes with
# zarr's default pipeline must pass, except the differences listed, with reasons, in
# python/tests_zarr_suite/differences.txt (and, in strict mode only, the tests of data types and
# codecs zuring leaves to zarr-python: strict-unsupported.txt). A spy plugin proves reads and
# writes ran in Rust, on LocalStore and through other stores.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
SDIST=.cache/zarr-3.1.6
if [ ! -f "$SDIST/tests/conftest.py" ]; then
  mkdir -p .cache/sdist
  .venv/bin/python -m pip download -q --no-deps --no-binary :all: zarr==3.1.6 -d .cache/sdist
  tar xzf .cache/sdist/zarr-3.1.6.tar.gz -C .cache
fi
deselect() {
  grep -v '^\s*#' "$1" | grep -v '^\s*$' | while read -r id _; do printf -- '--deselect\n%s\n' "$id"; done
}
mapfile -t DESELECT < <(deselect python/tests_zarr_suite/differences.txt)
mapfile -t STRICT < <(deselect python/tests_zarr_suite/strict-unsupported.txt)
SPY=$(mktemp -d)
trap 'rm -rf "$SPY"' EXIT
# The suite turns warnings into errors; zuring's one-time fallback warning is by design.
# Docstring and documentation tests do not touch the pipeline (and the docstring test collects
# differently in each xdist worker).
COMMON=(-p no:cacheprovider -p spy_plugin -n 2 -q -W "ignore:zuring:RuntimeWarning"
  --ignore=tests/test_docs.py --ignore=tests/test_examples.py --ignore=tests/test_api/test_synchronous.py)
export PYTHONHASHSEED=0 PYTHONPATH="$ROOT/python/tests_zarr_suite" ZURING_SPY_DIR="$SPY"
export ZARR_CODEC_PIPELINE__PATH=zuring.ZuringCodecPipeline
(cd "$SDIST" && "$ROOT/.venv/bin/python" -m pytest tests "${COMMON[@]}" "${DESELECT[@]}")
(cd "$SDIST" && ZARR_CODEC_PIPELINE__STRICT=True "$ROOT/.venv/bin/python" -m pytest \
  tests/test_array.py tests/test_indexing.py tests/test_codecs tests/test_v2.py tests/test_api.py \
  "${COMMON[@]}" "${DESELECT[@]}" "${STRICT[@]}")
.venv/bin/python - "$SPY" <<'PY'
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
