"""The typed API stays complete: every public name of pghook and every
public method of PostgresHook is typed, either in the extension module's
stubs (_pghook.pyi) or in pghook/__init__.py itself, and the stubs of the
extension module name the methods and parameters it really has. A cheap
check that needs no mypy."""

from __future__ import annotations

import ast
import inspect
from pathlib import Path
from typing import Dict, List

import pghook
import pghook._pghook as core

STUBS = Path(pghook.__file__).with_name("_pghook.pyi")


def stub_classes() -> Dict[str, ast.ClassDef]:
    tree = ast.parse(STUBS.read_text())
    return {node.name: node for node in tree.body if isinstance(node, ast.ClassDef)}


def stub_parameters(function: ast.FunctionDef) -> List[str]:
    args = function.args
    return [a.arg for a in args.posonlyargs + args.args + args.kwonlyargs if a.arg != "self"]


def untyped(function) -> List[str]:
    """The parameters (and "return") of `function` without an annotation."""
    signature = inspect.signature(function)
    missing = [
        name
        for name, p in signature.parameters.items()
        if name != "self" and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD) and p.annotation is p.empty
    ]
    if signature.return_annotation is signature.empty:
        missing.append("return")
    return missing


def test_every_public_name_is_typed() -> None:
    stubbed = stub_classes()
    for name in pghook.__all__:
        value = getattr(pghook, name)
        if name in stubbed:
            continue
        module = getattr(value, "__module__", None) or ""
        assert module == "pghook" or module.startswith("pghook._"), f"{name} is neither in {STUBS.name} nor in pghook"
        if inspect.isfunction(value):
            assert not untyped(value), f"pghook.{name}: untyped {untyped(value)}"
        if inspect.isclass(value) and not issubclass(value, BaseException):
            for method_name, method in vars(value).items():
                if inspect.isfunction(method) and (not method_name.startswith("_") or method_name == "__init__"):
                    assert not untyped(method), f"pghook.{name}.{method_name}: untyped {untyped(method)}"


def test_every_public_method_of_postgres_hook_is_typed() -> None:
    methods = [(n, m) for n, m in vars(pghook.PostgresHook).items() if inspect.isfunction(m) and not n.startswith("_")]
    assert len(methods) > 10
    for name, method in methods + [("__init__", pghook.PostgresHook.__init__)]:
        assert not untyped(method), f"PostgresHook.{name}: untyped {untyped(method)}"


def test_the_stubs_match_the_extension_module() -> None:
    stubbed = stub_classes()
    for name in dir(core):
        value = getattr(core, name)
        if isinstance(value, type) and not name.startswith("_"):
            assert name in stubbed, f"_pghook.{name} is not in {STUBS.name}"
    functions = {n.name: n for n in stubbed["Core"].body if isinstance(n, ast.FunctionDef)}
    methods = {n: m for n, m in vars(core.Core).items() if not n.startswith("_") and callable(m)}
    assert set(methods) <= set(functions), f"Core methods missing from the stubs: {set(methods) - set(functions)}"
    for name, method in [*methods.items(), ("__init__", core.Core)]:
        real = [p for p in inspect.signature(method).parameters if p != "self"]
        assert stub_parameters(functions[name]) == real, f"Core.{name}: the stubs' parameters differ"
