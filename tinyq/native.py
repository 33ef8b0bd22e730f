"""Redirecting what native libraries (TFLM, the TFLite converter) print straight to file descriptors 1 and 2."""

from __future__ import annotations

import contextlib
import os


@contextlib.contextmanager
def native_output_to(fd_target: int):
    """Send what native code prints on fd 1 and 2 to `fd_target` for the duration of the block."""
    saved = [os.dup(1), os.dup(2)]
    try:
        os.dup2(fd_target, 1)
        os.dup2(fd_target, 2)
        yield
    finally:
        os.dup2(saved[0], 1)
        os.dup2(saved[1], 2)
        for fd in saved:
            os.close(fd)


@contextlib.contextmanager
def native_quiet():
    """Discard what native code prints on fd 1 and 2 (progress chatter; errors still raise)."""
    with open(os.devnull, "wb") as devnull, native_output_to(devnull.fileno()):
        yield
