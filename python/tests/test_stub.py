"""The type stub (_native.pyi) declares everything the native module exports."""

import ast
import inspect
from pathlib import Path

import zuring._native as native


def stub_names():
    tree = ast.parse((Path(native.__file__).parent / "_native.pyi").read_text())
    names = {}
    for node in tree.body:
        if isinstance(node, ast.ClassDef):
            names[node.name] = {n.name for n in node.body if isinstance(n, ast.FunctionDef)} | {
                n.target.id for n in node.body if isinstance(n, ast.AnnAssign) and isinstance(n.target, ast.Name)
            }
        elif isinstance(node, ast.FunctionDef):
            names[node.name] = None
    return names


def test_stub_declares_every_export():
    stub = stub_names()
    exported = {n: getattr(native, n) for n in dir(native) if not n.startswith("_") and n != "__version__"}
    missing = sorted(set(exported) - set(stub))
    assert not missing, f"not in _native.pyi: {missing}"
    for name, obj in exported.items():
        if inspect.isclass(obj) and not issubclass(obj, BaseException):
            members = {m for m in vars(obj) if not m.startswith("_")}
            assert members <= stub[name], f"{name}: not in _native.pyi: {sorted(members - stub[name])}"
