"""Zarr groups: ``open_group`` / ``create_group`` and :class:`Group`, a read-only mapping from
member names to :class:`~zuring.Array` and :class:`Group` objects."""

from __future__ import annotations

import builtins
import json
import os
from collections.abc import Iterator, Mapping
from typing import Any

from zuring import _native
from zuring._attrs import Attributes, encode_attributes
from zuring.array import Array, _mode_read_only, _opened, _replacing, create_array, open_array


class Group(Mapping):
    """A Zarr group (v3 ``zarr.json`` or v2 ``.zgroup``). ``g[name]`` opens a member (nested:
    ``g["a/b"]``) as an :class:`~zuring.Array` or a :class:`Group`; iterating gives the direct
    members' names, sorted."""

    def __init__(self, native: _native.Group, read_only: bool = False):
        self._native = native
        self._read_only = read_only
        # The attributes as this object last wrote them (None: as the group was opened with).
        self._attributes: dict | None = None

    @property
    def path(self) -> str:
        return os.fspath(self._native.path)

    @property
    def zarr_format(self) -> int:
        return self._native.zarr_format

    @property
    def attrs(self) -> Attributes:
        """The user attributes, as zarr's ``attrs``: changes are written to the group's metadata
        document at once (``zarr.json``, or ``.zattrs`` for v2), atomically."""
        values = json.loads(self._native.attributes_json()) if self._attributes is None else self._attributes
        return Attributes(self.path, self.zarr_format, values, self._attributes_changed, self._read_only)

    @property
    def read_only(self) -> bool:
        """Whether the group was opened with ``mode="r"`` (its members are opened so too)."""
        return self._read_only

    def update_attributes(self, new_attributes: dict) -> "Group":
        """Merge ``new_attributes`` into the attributes (one write); returns the group, as zarr."""
        self.attrs.update(new_attributes)
        return self

    def _attributes_changed(self, values: dict) -> None:
        self._attributes = values

    def members(self, max_depth: int | None = 0) -> tuple[tuple[str, "Array | Group"], ...]:
        """The members, opened, as zarr's ``Group.members``: ``(name, array or group)`` pairs
        sorted by name; with ``max_depth`` n > 0 each member group followed by its own members,
        n levels down (``None``: all), named by their path from this group (``"sub/deep"``).
        (``keys()``, as the mapping's, ``array_keys()`` and ``group_keys()`` give the names.)"""
        if max_depth is not None and max_depth < 0:
            raise ValueError(f"max_depth must be None or >= 0, got {max_depth}")
        found: list[tuple[str, Array | Group]] = []
        for name, kind in self._native.members():
            node = self._member(name, kind)
            found.append((name, node))
            if kind == "group" and (max_depth is None or max_depth > 0):
                deeper = node.members(None if max_depth is None else max_depth - 1)
                found.extend((f"{name}/{sub}", n) for sub, n in deeper)
        return tuple(found)

    def array_keys(self) -> Iterator[str]:
        """The direct member arrays' names, sorted (zarr's ``Group.array_keys``)."""
        return (name for name, kind in self._native.members() if kind == "array")

    def group_keys(self) -> Iterator[str]:
        """The direct member groups' names, sorted (zarr's ``Group.group_keys``)."""
        return (name for name, kind in self._native.members() if kind == "group")

    def _member(self, name: str, kind: str) -> "Array | Group":
        if kind == "group":
            return Group(self._native.open_group(name), self._read_only)
        return _opened(lambda: self._native.open_array(name), os.path.join(self.path, name), self._read_only)

    def arrays(self) -> Iterator[tuple[str, Array]]:
        """The direct member arrays, opened, sorted by name."""
        for name in self.array_keys():
            yield name, self._member(name, "array")

    def groups(self) -> Iterator[tuple[str, "Group"]]:
        """The direct member groups, opened, sorted by name."""
        for name in self.group_keys():
            yield name, self._member(name, "group")

    def _member_dir(self, name: str) -> str:
        """The directory of member ``name`` (nested: ``"a/b"``); KeyError for a name that is
        not a relative, ``/``-separated path inside the group."""
        parts = name.split("/") if isinstance(name, str) else [""]
        if any(p in ("", ".", "..") for p in parts):
            raise KeyError(f"{name!r}: not a member name (relative, '/'-separated, no '..')")
        return os.path.join(self.path, *parts)

    def _creating(self, name: str) -> str:
        """The directory for a new member ``name``, its missing parent groups made (as zarr
        makes them); ValueError when the group was opened read-only."""
        if self._read_only:
            raise ValueError(f"{self.path}: opened read-only (mode='r'); {name!r} not created")
        target = self._member_dir(name)
        parts = name.split("/")
        for depth in range(1, len(parts)):
            parent = os.path.join(self.path, *parts[:depth])
            if not _is_group(parent):
                create_group(parent)
        return target

    def create_group(self, name: str, attributes: dict | None = None, *, overwrite: bool = False) -> "Group":
        """Create the member group ``name`` (nested: ``"a/b"``; missing parents made as groups),
        as zarr's ``Group.create_group``: FileExistsError where a node is stored, unless
        ``overwrite``."""
        return create_group(self._creating(name), attributes, overwrite=overwrite)

    def require_group(self, name: str, attributes: dict | None = None) -> "Group":
        """The member group ``name``, created (as :meth:`create_group`) if nothing is there;
        FileExistsError where an array is, as zarr's ``Group.require_group``."""
        target = self._member_dir(name)
        if _is_group(target):
            return Group(self._native.open_group(name), self._read_only)
        return self.create_group(name, attributes)

    def create_array(self, name: str, metadata: dict | str | None = None, *, overwrite: bool = False, **keywords: Any) -> Array:
        """Create the member array ``name`` (nested: ``"a/b"``; missing parents made as
        groups) from zarr's ``create_array`` keywords or its ``zarr.json``, as
        :func:`zuring.create_array`."""
        return create_array(self._creating(name), metadata, overwrite=overwrite, **keywords)

    def __getitem__(self, name: str) -> Array | Group:
        target = self._member_dir(name)
        try:
            if _is_group(target):
                return Group(self._native.open_group(name), self._read_only)
            return _opened(lambda: self._native.open_array(name), target, self._read_only)
        except FileNotFoundError as err:
            raise KeyError(f"{name!r}: {err}") from None

    def __iter__(self) -> Iterator[str]:
        return iter(name for name, _ in self._native.members())

    def __len__(self) -> int:
        return len(self._native.members())

    def __contains__(self, name: object) -> bool:
        if not isinstance(name, str):
            return False
        try:
            self[name]
        except KeyError:
            return False
        return True

    def __repr__(self) -> str:
        return f"<zuring.Group {self.path!r} members={list(self)}>"


def _is_group(path: str) -> bool:
    """Whether directory ``path`` holds a group: a v2 ``.zgroup``, or a ``zarr.json`` whose
    ``node_type`` is ``"group"``."""
    if os.path.isfile(os.path.join(path, ".zgroup")):
        return True
    try:
        with builtins.open(os.path.join(path, "zarr.json"), "rb") as f:
            return json.load(f).get("node_type") == "group"
    except (OSError, ValueError, AttributeError):
        return False


def open_group(path: str | os.PathLike, mode: str = "r+") -> Group:
    """Open the Zarr group in directory ``path`` (v3 or v2); ``mode="r"``: read-only, its
    members too (see :func:`zuring.open_array`)."""
    read_only = _mode_read_only(mode)
    return Group(_native.open_group(os.fspath(path)), read_only)


def create_group(path: str | os.PathLike, attributes: dict | None = None, *, overwrite: bool = False) -> Group:
    """Create a Zarr v3 group in directory ``path`` (made if missing) and open it; its
    ``attributes`` are checked and stored as ``attrs`` stores them (numpy values as JSON
    numbers and lists; NaN, infinities and keys other than strings refused before anything is
    written). An array or group already in ``path`` raises FileExistsError, nothing written,
    unless ``overwrite`` (as zarr's): then the directory and all it holds are replaced (moved
    aside, removed once the group is made; put back if it cannot be)."""
    text = encode_attributes(attributes or {})
    with _replacing(os.fspath(path), overwrite):
        return Group(_native.create_group(os.fspath(path), text))


def open(path: str | os.PathLike, mode: str = "r+") -> Array | Group:  # noqa: A001 - zarr.open's name
    """Open whatever Zarr node is in directory ``path``: an array or a group (``mode`` as in
    :func:`zuring.open_array`)."""
    path = os.fspath(path)
    if _is_group(path):
        return open_group(path, mode)
    return open_array(path, mode)
