"""Where tinyq's own files are: the Jinja templates and the firmware sources, shipped inside the package."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from .errors import TinyqError


def _package_dir(package: str) -> Path:
    """The folder of a data package on disk (tinyq is installed unzipped, so it is a real folder)."""
    folder = resources.files(package)
    path = Path(str(folder))
    if not path.is_dir():
        raise TinyqError(f"{package}: tinyq's installation is incomplete ({path} is not a folder); reinstall tinyq")
    return path


def templates_dir() -> Path:
    """templates/: one Jinja template per generated file."""
    return _package_dir("tinyq.templates")


def firmware_stub_dir() -> Path:
    """firmware_stub/: the hand-written stub, runtime kernels, board support and Makefile."""
    return _package_dir("tinyq.firmware_stub")


def runtime_dir() -> Path:
    """firmware_stub/runtime/: the C engine's kernels, copied into every emitted firmware folder."""
    return firmware_stub_dir() / "runtime"
