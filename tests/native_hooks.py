"""Stand-ins that tests put in place of a worker function (by module attribute, in tinyq's process or in a `tinyq`
subprocess through NATIVE_WRAPPER of tests/test_native.py); importable by the workers, which get tinyq's sys.path."""

from __future__ import annotations

import json
import os
import signal
import time

STOPPED_AT_ENV = "TINYQ_TEST_STOPPED_AT"  # where stop_self records its pid and the time it stopped


def segfault(*_args):
    """A runtime that dies by SIGSEGV."""
    os.kill(os.getpid(), signal.SIGSEGV)


def stop_self(*_args):
    """A runtime that stops responding mid-call: the worker SIGSTOPs itself (after saying when, if asked)."""
    path = os.environ.get(STOPPED_AT_ENV)
    if path:
        with open(path, "w") as f:
            json.dump({"pid": os.getpid(), "time": time.time()}, f)
    os.kill(os.getpid(), signal.SIGSTOP)
    return None


def echo_pid(value):
    """The worker's pid and `value`: a call whose unpickling imports nothing heavy (timed tests warm up with it)."""
    return os.getpid(), value
