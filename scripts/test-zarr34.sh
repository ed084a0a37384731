#!/usr/bin/env bash
# Test the Python package against zarr-python 3.4 on CPython 3.13 (built once from Debian's
# source package into .cache/), including zarr 3.4.2's shared CodecPipeline suite from its sdist.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup-venv313.sh
.venv313/bin/python -m pytest python/tests python/tests_zarr34 -q -n 2 --dist worksteal -p no:cacheprovider -p no:asyncio
