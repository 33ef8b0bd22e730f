"""Targets: one `Target` per Cortex-M core (registry.py), and building, running and measuring the firmware stub
on the host (firmware.py) and on those cores in QEMU (cortex_m.py: build and measure; qemu.py: run; memory.py:
flash and RAM; profile.py: per-op counts); `tinyq firmware` (firmware_cmd.py).

Only the registry is imported here, so reading the table (the CLI's choices) loads nothing else."""

from .registry import DEFAULT_TARGET, QEMU_MACHINES, TARGETS, MemoryRegion, Target, get

__all__ = ["DEFAULT_TARGET", "QEMU_MACHINES", "TARGETS", "MemoryRegion", "Target", "get"]
