"""What a kernel choice produces: constant arrays for flash and the specialised call that replaces a generic one."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class ConstArray:
    """A constant array the generated C keeps in flash."""

    name: str
    ctype: str
    values: np.ndarray

    @property
    def nbytes(self) -> int:
        return int(self.values.size * self.values.dtype.itemsize)


@dataclass(frozen=True)
class Variant:
    """A specialised kernel for one call, equivalent to the generic kernel it replaces (same inputs, same output
    bytes): its C function and parameter struct, integer fields, constant arrays (laid out for it) in the order of
    its pointer fields, how many elements of each array its indexing reaches, and the scratch bytes it needs in the
    arena (4-byte aligned) for the duration of the call."""

    kernel: str
    params_type: str
    fields: tuple[tuple[str, int], ...]
    arrays: tuple[ConstArray, ...]
    pointer_fields: tuple[str, ...]
    counts: tuple[int, ...]
    scratch_bytes: int = 0

    def __post_init__(self) -> None:
        if not (len(self.arrays) == len(self.pointer_fields) == len(self.counts)):
            raise ValueError(f"{self.kernel}: {len(self.arrays)} arrays, {len(self.pointer_fields)} pointer fields "
                             f"and {len(self.counts)} counts")
        if self.scratch_bytes < 0:
            raise ValueError(f"{self.kernel}: negative scratch {self.scratch_bytes}")
