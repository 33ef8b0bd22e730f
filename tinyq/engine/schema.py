"""The TFLite flatbuffer schema (the generated Python module tflite-micro ships), loaded on its own.

Importing it through the `tflite_micro` package would run that package's __init__, which loads TFLM's native
interpreter into tinyq's process; the schema is plain Python over `flatbuffers`, so it is loaded from its file.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

from ..errors import TinyqError

_SCHEMA_FILE = ("tensorflow", "lite", "micro", "python", "schema_py_generated.py")
_MODULE = "tinyq.engine._tflite_schema"


def _load() -> ModuleType:
    """The schema module, loaded once from tflite-micro's package folder without executing the package."""
    if _MODULE in sys.modules:
        return sys.modules[_MODULE]
    package = importlib.util.find_spec("tflite_micro")
    if package is None or not package.submodule_search_locations:
        raise TinyqError("the tflite-micro package is not installed; tinyq reads .tflite files with its schema "
                         "(pip install tflite-micro)")
    path = Path(list(package.submodule_search_locations)[0]).joinpath(*_SCHEMA_FILE)
    spec = importlib.util.spec_from_file_location(_MODULE, path)
    if spec is None or spec.loader is None or not path.is_file():
        raise TinyqError(f"tflite-micro's flatbuffer schema is missing ({path}); reinstall tflite-micro")
    module = importlib.util.module_from_spec(spec)
    sys.modules[_MODULE] = module
    spec.loader.exec_module(module)
    return module


schema = _load()
BuiltinOperator = schema.BuiltinOperator

_NAMES = {v: k for k, v in vars(BuiltinOperator).items() if not k.startswith("_")}


def op_code(name: str) -> int:
    """The builtin operator code of a schema name (CONV_2D, ...); -1 for a name the schema does not have."""
    return int(getattr(BuiltinOperator, name, -1))


def op_name(code: int) -> str:
    """The schema's name of a builtin operator code (CONV_2D, ...)."""
    return _NAMES.get(code, f"BUILTIN_{code}")
