"""A node's user attributes, as zarr-python's ``attrs``: a mutable mapping whose changes are
written to the node's metadata document at once (``zarr.json``; ``.zattrs`` for Zarr v2),
replaced atomically, so another reader sees the old document or the new one, never a torn one."""

from __future__ import annotations

import json
import math
import os
import tempfile
from collections.abc import Callable, Iterator, Mapping, MutableMapping
from typing import Any

import numpy as np

from zuring import _native


def plain(value: Any) -> Any:
    """numpy scalars and arrays as the Python values JSON stores (zarr's encoder does the same)."""
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"attribute values must be JSON-serialisable, got {type(value).__name__}")


def _dumps(value: Any, **options: Any) -> str:
    """``value`` as JSON text, non-ASCII characters as they are, or (when a string holds a lone
    surrogate, which UTF-8 cannot hold) every one escaped, as zarr-python writes them."""
    text = json.dumps(value, ensure_ascii=False, **options)
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return json.dumps(value, **options)
    return text


def encode_attributes(values: dict) -> str:
    """``values`` as JSON text, refusing what JSON cannot hold: keys other than strings, NaN
    and infinities (which would make the document unreadable to zarrs and other strict JSON
    readers), objects of other types."""
    for key in values:
        if not isinstance(key, str):
            raise TypeError(f"attribute names must be strings, got {key!r}")
    try:
        return _dumps(values, default=plain, allow_nan=False, indent=2)
    except ValueError as err:
        bad = next((k for k, v in values.items() if _has_nonfinite(v)), None)
        where = f"attribute {bad!r}" if bad is not None else "an attribute"
        raise ValueError(f"{where} holds NaN or an infinity, which JSON cannot store ({err})") from None


def _has_nonfinite(value: Any) -> bool:
    if isinstance(value, (float, np.floating)):
        return not math.isfinite(float(value))
    if isinstance(value, np.ndarray):
        return value.dtype.kind in "fc" and not bool(np.isfinite(value).all())
    if isinstance(value, Mapping):
        return any(_has_nonfinite(v) for v in value.values())
    if isinstance(value, (list, tuple)):
        return any(_has_nonfinite(v) for v in value)
    return False


def _replace(path: str, text: str) -> None:
    """Write ``text`` to ``path`` through a temporary file in the same directory (flushed to
    disk) renamed over it."""
    directory = os.path.dirname(path) or "."
    fd, tmp = tempfile.mkstemp(prefix=f".{os.path.basename(path)}.", suffix=".tmp", dir=directory)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def _read_object(path: str, missing: dict | None = None) -> dict:
    """The JSON object stored at ``path``; ``missing`` when there is no such file (None: an
    error)."""
    try:
        with open(path, "rb") as f:
            document = json.load(f)
    except FileNotFoundError:
        if missing is not None:
            return missing
        raise FileNotFoundError(f"{path}: the node's metadata document is gone") from None
    except ValueError as err:
        raise ValueError(f"{path}: not valid JSON ({err}); attributes not written") from None
    if not isinstance(document, dict):
        raise ValueError(f"{path}: not a JSON object; attributes not written")
    return document


def write_attributes(node: str, zarr_format: int, change: Callable[[dict], dict]) -> dict:
    """Change the user attributes of the node in directory ``node``: ``change`` gets those
    stored now (read again from disk: ``zarr.json``'s ``attributes`` for v3, where nothing else
    changes, or ``.zattrs`` for v2) and gives the new ones, which are stored. Returns them as a
    reader of the document gets them (numpy values as plain ones). The document is held from
    zuring's other writers of it (resizes, attribute changes; any thread or process of the
    machine) from the read to the replacement, so a resize meanwhile is not undone by the old
    shape written back, and changes of other keys meanwhile, by other handles, threads or
    processes, are kept."""
    with _native.hold_metadata(node):
        if zarr_format == 2:
            path = os.path.join(node, ".zattrs")
            text = encode_attributes(change(_read_object(path, missing={})))
            _replace(path, text)
            return json.loads(text)
        path = os.path.join(node, "zarr.json")
        document = _read_object(path)
        current = document.get("attributes")
        text = encode_attributes(change(dict(current) if isinstance(current, dict) else {}))
        stored = json.loads(text)
        document["attributes"] = stored
        _replace(path, _dumps(document, indent=2))
        return stored


class Attributes(MutableMapping):
    """The user attributes of an array or group (``node.attrs``). Reading is a dict lookup;
    each change (``attrs[k] = v``, ``del attrs[k]``, ``update``, ``put``) writes the node's
    metadata document at once. Values are JSON: numbers, strings, booleans, None, lists and
    dicts of them (numpy scalars and arrays become these); NaN and infinities are refused."""

    def __init__(self, node: str, zarr_format: int, values: dict, changed: Callable[[dict], None] | None = None, read_only: bool = False):
        self._node = node
        self._read_only = read_only
        self._format = zarr_format
        self._values = dict(values)
        self._changed = changed

    def _store(self, change: Callable[[dict], dict]) -> None:
        """Apply ``change`` to the stored attributes (see :func:`write_attributes`); this
        mapping then holds what was stored."""
        if self._read_only:
            raise ValueError(f"{self._node}: opened read-only (mode='r'); attributes not written")
        self._values = write_attributes(self._node, self._format, change)
        if self._changed is not None:
            self._changed(dict(self._values))

    def __getitem__(self, key: str) -> Any:
        return self._values[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)

    def __setitem__(self, key: str, value: Any) -> None:
        self._store(lambda stored: {**stored, key: value})

    def __delitem__(self, key: str) -> None:
        if key not in self._values:
            raise KeyError(key)
        self._store(lambda stored: {k: v for k, v in stored.items() if k != key})

    def update(self, other: Any = (), /, **kwargs: Any) -> None:  # one write for all of them
        changes: dict = {}
        changes.update(other, **kwargs)
        self._store(lambda stored: {**stored, **changes})

    def put(self, values: Mapping) -> None:
        """Replace all the attributes with ``values`` (zarr's ``Attributes.put``)."""
        values = dict(values)
        self._store(lambda stored: values)

    def asdict(self) -> dict:
        """A copy of the attributes as a dict."""
        return dict(self._values)

    def __repr__(self) -> str:
        return repr(self._values)
