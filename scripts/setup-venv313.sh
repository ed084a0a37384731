#!/usr/bin/env bash
# Create (once) .venv313/ on CPython 3.13 (built from Debian's source package into .cache/) with
# zarr-python 3.4.2, unpack zarr 3.4.2's sdist (its shared pipeline suite) into .cache/, and
# install the zuring wheel built for Python >= 3.11 (abi3) into it.
#
#   scripts/setup-venv313.sh               all of that
#   scripts/setup-venv313.sh --no-package  all but the wheel (scripts/test.sh runs this in the
#                                          background while the Rust workspace builds)
set -euo pipefail
cd "$(dirname "$0")/.."
PY313="$(bash scripts/build-python313.sh)"
# pytest-asyncio, pytest-xdist and pytest-benchmark: what zarr 3.4.2's own suite needs to run;
# cast-value-rs: zarr 3.4's backend for the cast_value codec (its tests are skipped without it);
# ml_dtypes and tensorstore: the machine-learning types' tests (skipped without them). torch is
# left to the 3.11 venv (its tests there): its wheels with their CUDA libraries run to gigabytes.
REQS="zarr==3.4.2 pytest hypothesis numcodecs xarray==2026.9.0 dask==2026.8.0 pytest-asyncio pytest-xdist pytest-benchmark pcodec==1.1.0 cast-value-rs==0.5.1 ml_dtypes==0.6.0 tensorstore==0.1.86"
if [ ! -f .venv313/.zuring-setup ] || [ "$(cat .venv313/.zuring-setup)" != "$REQS" ]; then
  "$PY313" -m venv .venv313
  # shellcheck disable=SC2086
  .venv313/bin/python -m pip install -q $REQS
  echo "$REQS" > .venv313/.zuring-setup
fi
if [ ! -f .cache/zarr-3.4.2/tests/test_codec_pipeline_suite.py ]; then
  mkdir -p .cache/sdist
  .venv313/bin/python -m pip download -q --no-deps --no-binary :all: zarr==3.4.2 -d .cache/sdist
  tar xzf .cache/sdist/zarr-3.4.2.tar.gz -C .cache
fi
if [ "${1:-}" = --no-package ]; then
  exit 0
fi
# The abi3 wheel built for 3.11 serves 3.13 too; installed again only when what it holds
# changed (not the wheel's own bytes, nor its RECORD and SBOM: they differ with each build).
rm -rf target/wheels
(cd python && ../.venv/bin/maturin build --release --quiet -o ../target/wheels)
WHEEL_SUM="$(.venv/bin/python - target/wheels/zuring-*.whl <<'PY'
import hashlib, sys, zipfile
digest = hashlib.sha256()
with zipfile.ZipFile(sys.argv[1]) as wheel:
    for name in sorted(wheel.namelist()):
        if name.endswith(".dist-info/RECORD") or ".dist-info/sboms/" in name:
            continue
        digest.update(name.encode() + b"\0" + wheel.read(name))
print(digest.hexdigest())
PY
)"
if [ "$(cat .venv313/.zuring-wheel 2>/dev/null)" != "$WHEEL_SUM" ] \
  || ! .venv313/bin/python -c 'import importlib.metadata as m; m.version("zuring")' 2>/dev/null; then
  .venv313/bin/python -m pip install -q --force-reinstall --no-deps target/wheels/zuring-*.whl
  echo "$WHEEL_SUM" > .venv313/.zuring-wheel
fi
