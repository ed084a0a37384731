"""zuring: fast Zarr v3 reads and writes over io_uring.

- :func:`open_array` / :class:`Array`: numpy-style reads and writes, and ``read_crops`` for batches
  of random crops in one call.
- :class:`Reader`: batched byte-range reads (``read_ranges``, ``submit`` / ``try_get`` / ``wait_get``)
  returning zero-copy buffers.
"""

from zuring._native import CorruptDataError, UnsupportedError, ZuringError
from zuring._native import Buffer, Reader
from zuring.array import Array, create_array, open_array
from zuring.sampler import CropSampler


def __getattr__(name: str):
    # The pipeline imports zarr: load it only when asked for.
    if name == "ZuringCodecPipeline":
        from zuring.pipeline import ZuringCodecPipeline

        return ZuringCodecPipeline
    raise AttributeError(f"module 'zuring' has no attribute {name!r}")


__all__ = [
    "Array",
    "Buffer",
    "CorruptDataError",
    "CropSampler",
    "Reader",
    "UnsupportedError",
    "ZuringCodecPipeline",
    "ZuringError",
    "create_array",
    "open_array",
]
__version__ = "0.1.0"
