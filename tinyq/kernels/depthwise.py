"""Specialised depthwise kernels: choice and constant layout (C in firmware_stub/runtime/)."""

from __future__ import annotations

from typing import Mapping

from .base import ConstArray, Variant


def choose(fields: Mapping[str, int], arrays: Mapping[str, ConstArray], name: str) -> Variant | None:
    """The variant for this call, or None for the generic kernel."""
    return None
