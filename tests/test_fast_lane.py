"""The fast lane (`pytest -m fast`): conftest.FAST_FILES names exactly the files holding fast tests, and neither
they nor conftest import TensorFlow (conftest's session-finish hook also fails a fast run that imported it)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import conftest
import pytest

pytestmark = pytest.mark.fast

TESTS = Path(__file__).resolve().parent


def test_fast_files_are_the_files_with_fast_tests():
    core = {"test_engine_reader.py", "test_engine_lowering.py", "test_engine_emission.py", "test_imports.py"}
    assert core <= conftest.FAST_FILES
    for name in conftest.FAST_FILES:
        assert re.search(r"pytest\.mark\.fast\b", (TESTS / name).read_text()), name
    assert "test_pipeline.py" not in conftest.FAST_FILES


def test_conftest_names_tinyqs_environment_variables():
    from tinyq import data, models

    assert (conftest.MNIST_ENV_VAR, conftest.CACHE_ENV_VAR) == (data.ENV_VAR, models.CACHE_ENV_VAR)


def test_fast_test_modules_import_no_tensorflow():
    modules = ["conftest", *sorted(name.removesuffix(".py") for name in conftest.FAST_FILES)]
    code = (f"import sys; sys.path.insert(0, {str(TESTS)!r}); " + "; ".join(f"import {m}" for m in modules) +
            "; heavy = sorted(m for m in sys.modules if m.split('.')[0] in ('tensorflow', 'keras', 'tf_keras')); "
            "print(heavy); sys.exit(1 if heavy else 0)")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
