"""zuring: fast Zarr v3 reads and writes over io_uring.

- :func:`open_array` / :class:`Array`: numpy-style reads and writes, and ``read_crops`` for batches
  of random crops in one call.
- :func:`open_group` / :func:`create_group` / :class:`Group`: hierarchies (``g["a/b"]``);
  :func:`open` opens either kind of node.
- :class:`Reader`: batched byte-range reads (``read_ranges``, ``submit`` / ``try_get`` / ``wait_get``)
  returning zero-copy buffers.
"""

from zuring._native import CorruptDataError, EncodeError, UnsupportedError, ZuringError
from zuring._native import Buffer, Reader
from zuring.array import Array, create_array, open_array
from zuring.group import Group, create_group, open, open_group
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
    "EncodeError",
    "Group",
    "Reader",
    "UnsupportedError",
    "ZuringCodecPipeline",
    "ZuringError",
    "create_array",
    "create_group",
    "open",
    "open_array",
    "open_group",
]
__version__ = "0.1.0"
