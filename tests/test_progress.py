"""Progress on stderr: plain lines when stderr is not a terminal, a bar with counts and time left when it is, and
no TensorFlow or absl log line on a normal run."""

import io
import re
import subprocess
import sys

import numpy as np
import pytest

from tinyq import cli
from tinyq.progress import Count, counted


class _Terminal(io.StringIO):
    def isatty(self):
        return True


@pytest.mark.fast
def test_plain_lines_when_not_a_terminal():
    stream = io.StringIO()
    say = cli._Progress(quiet=False, stream=stream)
    say("loading")
    tick = counted(say, "TFLM int8", 1000, every=100)
    for i in range(1, 1001):
        tick(i)
    say("done")
    lines = stream.getvalue().splitlines()
    assert [re.sub(r"^\[\s*[\d.]+s\] ", "", ln) for ln in lines] == ["loading", "TFLM int8 (1000)", "done"]


@pytest.mark.fast
def test_bar_with_counts_and_time_left_on_a_terminal():
    pytest.importorskip("tqdm", reason="tinyq depends on tqdm; a bare fast-lane venv may lack it")
    stream = _Terminal()
    say = cli._Progress(quiet=False, stream=stream)
    tick = counted(say, "sweeping", 12)
    for i in range(1, 13):
        tick(i)
    text = stream.getvalue()
    assert "sweeping (12)" in text and "12/12" in text and "<" in text  # elapsed<remaining
    assert say.bar is None


@pytest.mark.fast
def test_quiet_prints_nothing():
    stream = _Terminal()
    say = cli._Progress(quiet=True, stream=stream)
    say("x")
    counted(say, "y", 3)(3)
    assert stream.getvalue() == ""


@pytest.mark.fast
def test_counts_are_checked():
    with pytest.raises(ValueError):
        Count("x", 5, 3)


@pytest.mark.integration
@pytest.mark.slow
def test_demo_stderr_holds_only_tinyq_lines(tmp_path, model_cache):
    proc = subprocess.run([sys.executable, "-m", "tinyq.cli", "demo", "--model", "mnist_mlp", "--out",
                           str(tmp_path / "o"), "--no-analysis", "--no-cortex-m"],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-2000:]
    lines = proc.stderr.splitlines()
    assert lines and all(re.match(r"^\[\s*[\d.]+s\] ", ln) for ln in lines), lines
    assert "TFLM int8 (10000)" in proc.stderr


@pytest.mark.fast
def test_a_runtime_pass_over_many_inputs_is_one_line_and_one_bar():
    from tinyq.runtimes import PROGRESS_EVERY, _in_chunks

    stream = io.StringIO()
    say = cli._Progress(quiet=False, stream=stream)
    n = 2 * PROGRESS_EVERY + 7
    out = _in_chunks(np.arange(n), lambda x: x * 2, counted(say, "TFLM int8", n))
    assert (out == 2 * np.arange(n)).all()
    assert stream.getvalue().count("TFLM int8") == 1
