"""Packages export exactly their public API, and every public function has type hints."""

from __future__ import annotations

import inspect

import pytest

import bot
import intents
import knowledge


@pytest.mark.parametrize("module", [bot, intents, knowledge])
def test_exports_all_names_exist(module: object) -> None:
    for name in module.__all__:  # type: ignore[attr-defined]
        assert hasattr(module, name), name


@pytest.mark.parametrize("module", [bot, intents, knowledge])
def test_exports_public_callables_have_hints(module: object) -> None:
    for name in module.__all__:  # type: ignore[attr-defined]
        obj = getattr(module, name)
        functions = [obj] if inspect.isfunction(obj) else []
        if inspect.isclass(obj):
            functions = [f for n, f in vars(obj).items() if inspect.isfunction(f) and not n.startswith("_")]
        for function in functions:
            hints = function.__annotations__
            assert "return" in hints, f"{name}.{function.__name__} lacks a return type"
