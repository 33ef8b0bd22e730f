"""The sizes ARCHITECTURE.md promises: no module of tinyq over 450 lines, no class or function over 150, the
lowering driver at most 250; and the op table as the only place that knows ops (no module outside engine/ops
dispatches on an op's or a C kernel's name). Reads the source with `ast`; imports nothing."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

pytestmark = pytest.mark.fast

PACKAGE = Path(__file__).resolve().parent.parent / "tinyq"
SOURCES = sorted(p for p in PACKAGE.rglob("*.py") if "templates" not in p.parts and "firmware_stub" not in p.parts)


def test_modules_are_at_most_450_lines():
    long = {str(p.relative_to(PACKAGE)): n for p in SOURCES if (n := len(p.read_text().splitlines())) > 450}
    assert not long, long


def test_classes_and_functions_are_at_most_150_lines():
    long = {}
    for p in SOURCES:
        for node in ast.walk(ast.parse(p.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                if (n := node.end_lineno - node.lineno + 1) > 150:
                    long[f"{p.relative_to(PACKAGE)}:{node.name}"] = n
    assert not long, long


def test_the_lowering_driver_is_at_most_250_lines():
    assert len((PACKAGE / "engine" / "lower.py").read_text().splitlines()) <= 250


def test_no_dispatch_on_op_or_kernel_names_outside_the_op_table():
    """`op.name == "X"`, `call.kernel in (...)` and the like belong in the family modules (engine/ops)."""
    pattern = re.compile(r"\b(op\.name|op_name|\.kernel)\s*(==|!=|in)\s*[(\[{\"']")
    found = [f"{p.relative_to(PACKAGE)}:{i}" for p in SOURCES if "ops" not in p.relative_to(PACKAGE).parts[:2]
             for i, line in enumerate(p.read_text().splitlines(), 1) if pattern.search(line)]
    assert not found, found
