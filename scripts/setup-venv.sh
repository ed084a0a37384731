#!/usr/bin/env bash
# Create (once) the repo's .venv/ with the Python tools the build and tests need.
# Idempotent: a stamp file records what was installed; re-run after editing the list below.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3.11}
command -v "$PY" >/dev/null || PY=python3
REQS="maturin==1.16.0 numpy pytest zarr==3.1.6 hypothesis torch torchdata==0.11.0 tensorstore==0.1.86 ml_dtypes==0.6.0 zarrs==0.2.3 pytest-asyncio==1.5.0 pytest-xdist==3.8.0 pytest-benchmark==5.3.1 xarray==2026.9.0 dask==2026.8.0 pcodec==1.1.0"
STAMP=.venv/.zuring-setup
if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$REQS" ]; then
  exit 0
fi
"$PY" -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
# shellcheck disable=SC2086
.venv/bin/python -m pip install -q $REQS
echo "$REQS" > "$STAMP"
