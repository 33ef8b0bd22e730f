"""Faults a user meets: signals at each stage of writing an output, killed runs, concurrent runs, full disks,
read-only locations, corrupt or wrong cache entries, edited output files, bad names and labels."""

from __future__ import annotations

import errno
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections import namedtuple
from pathlib import Path

import numpy as np
import procs
import pytest

from tinyq import cli, data, emit, models, outdir
from tinyq.errors import DataError, OutputError

# A run that writes OUT through tinyq.outdir and stops at a named stage (printing "at STAGE") until killed:
# claimed (lock held, before the long steps), staging (half the new files written), swap (old output renamed
# aside, new one not yet in: only SIGKILL can land there, signals are held back).
DRIVER = r"""
import os, signal, sys, time
from pathlib import Path
from tinyq import cli, outdir
out, stage = sys.argv[1], sys.argv[2]
signal.signal(signal.SIGTERM, cli._terminated)
def wait(name):
    if stage == name:
        print("at " + name, flush=True)
        time.sleep(120)
real_replace = os.replace
def replace(a, b):
    real_replace(a, b)
    if ".old." in Path(b).name:
        wait("swap")
os.replace = replace
try:
    with outdir.claim(out, overwrite=True) as held:
        wait("claimed")
        with held.staged() as tmp:
            (tmp / "a.txt").write_text("new a")
            wait("staging")
            (tmp / "b.txt").write_text("new b")
except KeyboardInterrupt:
    sys.exit(130)
print("done", flush=True)
"""

OLD = {"a.txt": "old a", "keep.txt": "old keep"}


def _old_output(tmp_path: Path) -> Path:
    out = tmp_path / "out"
    out.mkdir()
    for name, text in OLD.items():
        (out / name).write_text(text)
    return out


def _contents(out: Path) -> dict[str, str]:
    """Every file under `out` (relative path -> text), hidden ones included."""
    return {p.relative_to(out).as_posix(): p.read_text(errors="replace") for p in sorted(out.rglob("*"))
            if p.is_file()}


def _start(args: list[str], wait_for: str, stream: str = "stdout", timeout: float = 120.0) -> subprocess.Popen:
    """Start a process and return once it printed a line containing `wait_for`."""
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    pipe = getattr(proc, stream)
    deadline = time.monotonic() + timeout
    seen = []
    while time.monotonic() < deadline:
        line = pipe.readline()
        if not line:
            break
        seen.append(line)
        if wait_for in line:
            return proc
    proc.kill()
    raise AssertionError(f"never reached {wait_for!r}: {''.join(seen)[-2000:]} {proc.stderr.read()[-2000:]}")


def _leftovers(out: Path) -> list[str]:
    return sorted(p.name for p in out.parent.iterdir() if p.name.startswith(f".{out.name}."))


def _processes_mentioning(text: str) -> list[str]:
    found = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            args = cmdline.read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if text in args and cmdline.parent.name != str(os.getpid()):
            found.append(args)
    return found


@pytest.fixture
def no_long_steps(monkeypatch):
    """Fails a run that gets as far as loading data or training: what a test refuses must be refused before.
    (A wall-clock bound would say the same, but flakes on a loaded machine.)"""
    def reached(*_args, **_kwargs):
        raise AssertionError("reached the long steps")

    for module in (data, cli):  # the CLI holds its own references (module-level imports)
        monkeypatch.setattr(module, "load_mnist", reached)
    for module in (models, cli):
        monkeypatch.setattr(module, "demo_model", reached)


Fault = namedtuple("Fault", "signal stage expected")

# fault x stage -> what OUT holds afterwards ("old": the old output, untouched; "new": the complete new one)
MATRIX = [
    Fault(signal.SIGINT, "claimed", "old"), Fault(signal.SIGTERM, "claimed", "old"),
    Fault(signal.SIGKILL, "claimed", "old"),
    Fault(signal.SIGINT, "staging", "old"), Fault(signal.SIGTERM, "staging", "old"),
    Fault(signal.SIGKILL, "staging", "old"),
    Fault(signal.SIGKILL, "swap", "old"),  # restored by the next run
]


@pytest.mark.parametrize("fault", MATRIX, ids=[f"{f.signal.name}-{f.stage}" for f in MATRIX])
def test_signal_at_each_stage_keeps_the_old_output(tmp_path, fault):
    out = _old_output(tmp_path)
    proc = _start([sys.executable, "-c", DRIVER, str(out), fault.stage], f"at {fault.stage}")
    proc.send_signal(fault.signal)
    code = proc.wait(30)
    assert code == {signal.SIGINT: 130, signal.SIGTERM: 130, signal.SIGKILL: -9}[fault.signal]
    if fault.signal is not signal.SIGKILL:  # unwound: nothing left beside the output
        assert _contents(out) == OLD and _leftovers(out) == []
    with outdir.claim(out, overwrite=True) as held:  # the next run restores and cleans up
        assert _leftovers(out) == [".out.lock"]
        assert _contents(out) == OLD
        if fault.stage == "swap":
            assert held.recovery.restored is not None
    assert _leftovers(out) == []


def test_signals_during_the_swap_wait_until_it_is_done(tmp_path, monkeypatch):
    out = _old_output(tmp_path)
    real = os.replace

    def replace_then_interrupt(a, b):
        real(a, b)
        os.kill(os.getpid(), signal.SIGINT)  # held back until both renames are done

    with outdir.claim(out, overwrite=True) as held, pytest.raises(KeyboardInterrupt):
        with held.staged() as tmp:
            (tmp / "new.txt").write_text("new")
            monkeypatch.setattr(os, "replace", replace_then_interrupt)
    monkeypatch.setattr(os, "replace", real)
    assert _contents(out) == {"new.txt": "new"}
    with outdir.claim(out, overwrite=True):  # the old output left aside by the interrupt goes
        pass
    assert _leftovers(out) == []


def test_interrupted_swap_removes_the_old_output_itself(tmp_path, monkeypatch):
    out = _old_output(tmp_path)
    real = os.replace

    def replace_then_interrupt(a, b):
        real(a, b)
        if ".old." in Path(b).name:
            os.kill(os.getpid(), signal.SIGINT)  # Ctrl-C between the two renames: held back until both are done

    with outdir.claim(out, overwrite=True) as held, pytest.raises(KeyboardInterrupt):
        with held.staged() as tmp:
            (tmp / "new.txt").write_text("new")
            monkeypatch.setattr(os, "replace", replace_then_interrupt)
    monkeypatch.setattr(os, "replace", real)
    assert _contents(out) == {"new.txt": "new"}
    assert _leftovers(out) == []  # no .out.old.PID waiting for a next run


# A run interrupted (SIGINT or SIGTERM) between the two renames of its swap, in its own process.
SWAP_INTERRUPTED = r"""
import os, signal, sys
from pathlib import Path
from tinyq import cli, outdir
signal.signal(signal.SIGTERM, cli._terminated)
out, sig = sys.argv[1], signal.Signals[sys.argv[2]]
real_replace = os.replace
def replace(a, b):
    real_replace(a, b)
    if ".old." in Path(b).name:
        os.kill(os.getpid(), sig)
os.replace = replace
try:
    with outdir.claim(out, overwrite=True) as held:
        with held.staged() as tmp:
            (tmp / "new.txt").write_text("new")
except KeyboardInterrupt:
    sys.exit(130)
"""


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_run_interrupted_during_its_swap_leaves_the_new_output_and_nothing_else(tmp_path, sig):
    out = _old_output(tmp_path)
    proc = subprocess.run([sys.executable, "-c", SWAP_INTERRUPTED, str(out), sig.name], capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 130, proc.stderr
    assert _contents(out) == {"new.txt": "new"} and _leftovers(out) == []


def test_dead_runs_old_output_is_removed_but_a_live_ones_and_foreign_names_are_not(tmp_path):
    out = _old_output(tmp_path)
    dead_pid = int(Path("/proc/sys/kernel/pid_max").read_text()) + 1  # never a running pid
    dead = tmp_path / f".out.old.{dead_pid}"
    live = tmp_path / f".out.old.{os.getppid()}"
    foreign = [tmp_path / f".out.old.{dead_pid}.mine", tmp_path / f".out.older.{dead_pid}",
               tmp_path / f".other.old.{dead_pid}", tmp_path / f"out.old.{dead_pid}"]
    for d in (dead, live, *foreign):
        d.mkdir()
        (d / "x").write_text("old")
    with outdir.claim(out, overwrite=True) as held:
        assert held.recovery.removed == (dead,) and held.recovery.restored is None
    assert not dead.exists() and live.exists() and all(d.exists() for d in foreign)
    assert _contents(out) == OLD


def test_second_run_into_the_same_out_is_refused_naming_the_first(tmp_path):
    out = _old_output(tmp_path)
    proc = _start([sys.executable, "-c", DRIVER, str(out), "claimed"], "at claimed")
    try:
        with pytest.raises(OutputError, match=rf"another tinyq run \(pid {proc.pid}\) is writing this folder"):
            with outdir.claim(out, overwrite=True):
                pass
        code = cli.main(["--quiet", "convert", str(tmp_path / "m.keras"), "--out", str(out), "--force"])
        assert code == cli.EXIT_ERROR
    finally:
        proc.kill()
        proc.wait()
    assert _contents(out) == OLD


def test_dead_runs_staging_is_cleaned_but_a_live_ones_is_not(tmp_path):
    out = _old_output(tmp_path)
    # A pid above the kernel's pid_max never runs (the pid of a process that exited could be reused by now).
    dead_pid = int(Path("/proc/sys/kernel/pid_max").read_text()) + 1
    stale = tmp_path / f".out.out.{dead_pid}.0badf00d"
    live = tmp_path / f".out.out.{os.getppid()}.0badf00d"
    for d in (stale, live):
        d.mkdir()
        (d / "x").write_text("partial")
    with outdir.claim(out, overwrite=True) as held:
        assert stale in held.recovery.removed
    assert not stale.exists() and live.exists()
    shutil.rmtree(live)


def test_outputs_get_the_users_permissions(tmp_path):
    old = os.umask(0o022)
    try:
        with outdir.claim(tmp_path / "o") as held, held.staged() as tmp:
            (tmp / "f").write_text("x")
    finally:
        os.umask(old)
    assert (tmp_path / "o").stat().st_mode & 0o777 == 0o755


def test_full_disk_before_the_long_steps_is_one_line(tmp_path, monkeypatch, capsys, no_long_steps):
    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(outdir.shutil, "disk_usage", lambda _p: usage(1 << 30, (1 << 30) - (5 << 20), 5 << 20))
    assert cli.main(["--quiet", "demo", "--out", str(tmp_path / "o")]) == cli.EXIT_ERROR
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "only 5 MiB free; tinyq needs at least 64 MiB" in err


def test_full_disk_while_writing_keeps_the_old_output(tmp_path, monkeypatch):
    out = _old_output(tmp_path)
    real = Path.write_text

    def full(self, text, *args, **kwargs):
        if self.name == "b.txt":
            raise OSError(errno.ENOSPC, "No space left on device", str(self))
        return real(self, text, *args, **kwargs)

    monkeypatch.setattr(Path, "write_text", full)
    files = [emit.GeneratedFile("a.txt", "new a"), emit.GeneratedFile("b.txt", "new b")]
    with pytest.raises(OutputError, match=r"b.txt: cannot write: no space left on the device"):
        emit.write_files(files, out, overwrite=True)
    assert _contents(out) == OLD and _leftovers(out) == []


@pytest.mark.parametrize("code, words", [(errno.ENOSPC, "no space left on the device"),
                                         (errno.EROFS, "read-only file system")])
def test_disk_errors_at_any_stage_are_one_line(tmp_path, monkeypatch, capsys, code, words):
    def fail(_path=None):
        raise OSError(code, os.strerror(code), "/data/cache/x.npz")

    monkeypatch.setattr(cli, "load_mnist", fail)  # the CLI's own reference to data.load_mnist
    assert cli.main(["--quiet", "demo", "--out", str(tmp_path / "o")]) == cli.EXIT_ERROR
    err = capsys.readouterr().err
    assert err == f"tinyq: error: /data/cache/x.npz: cannot write: {words}\n"
    assert _leftovers(tmp_path / "o") == []


def test_read_only_location_is_refused_before_any_work(tmp_path, monkeypatch, capsys, no_long_steps):
    real_open = os.open

    def read_only(path, flags, mode=0o777, **kw):
        if str(path).endswith(".lock"):
            raise OSError(errno.EROFS, "Read-only file system", str(path))
        return real_open(path, flags, mode, **kw)

    monkeypatch.setattr(outdir.os, "open", read_only)
    assert cli.main(["--quiet", "demo", "--out", str(tmp_path / "o")]) == cli.EXIT_ERROR
    assert "cannot write: read-only file system" in capsys.readouterr().err


# --- the model cache --------------------------------------------------------------------------------------------

def _small(dataset, n=256):
    return data.Dataset(dataset.train_x[:n], dataset.train_y[:n], dataset.test_x[:n], dataset.test_y[:n], "small")


def test_corrupt_and_wrong_cache_entries_are_rebuilt_saying_so(dataset, tmp_path, monkeypatch):
    monkeypatch.setenv(models.CACHE_ENV_VAR, str(tmp_path))
    ds = _small(dataset)
    cfg = models.TrainConfig(epochs=1)
    said: list[str] = []
    first = models.demo_model("mnist_mlp", ds, cfg, progress=said.append)
    (entry,) = tmp_path.glob("mnist_mlp-*.keras")
    record = json.loads(entry.with_suffix(".json").read_text())
    assert record["sha256"] and record["model"] == "mnist_mlp" and said == []

    entry.write_bytes(entry.read_bytes()[:100])  # truncated: corrupt
    again = models.demo_model("mnist_mlp", ds, cfg, progress=said.append)
    assert "content hash mismatch" in said[-1] and "retraining mnist_mlp" in said[-1]
    assert np.array_equal(again.get_weights()[0], first.get_weights()[0])

    other = models.build("mnist_cnn", cfg)  # a valid model of the wrong kind, under the right key
    other.save(entry)
    models.demo_model("mnist_mlp", ds, cfg, progress=said.append)
    assert "content hash mismatch" in said[-1]

    entry.with_suffix(".json").write_text("{not json")
    models.demo_model("mnist_mlp", ds, cfg, progress=said.append)
    assert "unreadable record" in said[-1]
    n = len(said)
    models.demo_model("mnist_mlp", ds, cfg, progress=said.append)  # now trusted again
    assert len(said) == n


# --- names, labels, report.json, manifest -----------------------------------------------------------------------

@pytest.mark.parametrize("name, words", [("tinyq", "clashes with tinyq's runtime symbols"),
                                         ("tq_conv", "clashes with tinyq's runtime symbols"),
                                         ("int", "keyword"), ("my-net", "not a C identifier; e.g. my_net"),
                                         ("2fast", "not a C identifier")])
def test_bad_names_are_refused_before_any_work(tmp_path, capsys, name, words, no_long_steps):
    assert cli.main(["--quiet", "demo", "--name", name, "--out", str(tmp_path / "o")]) == cli.EXIT_ERROR
    err = capsys.readouterr().err
    assert words.split(";")[0] in err and (";" not in words or words.split("; ")[1] in err)
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("labels, words", [([1, 2.5, 3], "label #1 is 2.5, not an integer"),
                                           ([0, -1, 4], "label #1 is -1, outside 0..9"),
                                           ([9, 10, 3], "label #1 is 10, outside 0..9")])
def test_bad_labels_name_index_and_value(labels, words):
    with pytest.raises(DataError, match=words):
        data.check_labels(np.array(labels), 10, "y_test")


def test_integral_float_labels_are_accepted():
    assert data.check_labels(np.array([0.0, 9.0]), 10, "y").tolist() == [0, 9]


@pytest.fixture(scope="module")
def emitted(tmp_path_factory, cnn_q, cnn_verify):
    """A folder as `tinyq demo` leaves it, without the builds: model, firmware files, report.json."""
    out = tmp_path_factory.mktemp("emitted") / "out"
    emit.emit(cnn_q, cnn_verify, out / "firmware", name="mnist")
    (out / "model_int8.tflite").write_bytes(cnn_q.tflite)
    (out / "report.json").write_text(json.dumps({"model": {"sha256": cnn_q.sha256}}))
    return out


def _copy(emitted: Path, tmp_path: Path) -> Path:
    out = tmp_path / "out"
    shutil.copytree(emitted, out)
    return out


def test_untouched_folder_matches_its_manifest(emitted):
    from tinyq.outdir import check_manifest

    assert check_manifest(emitted) == ()


def test_edited_files_are_refused_naming_them(emitted, tmp_path, capsys):
    out = _copy(emitted, tmp_path)
    data_c = out / "firmware" / "mnist_model_data.c"
    data_c.write_text(data_c.read_text() + "/* edited */\n")
    (out / "firmware" / "extra.c").write_text("int x;\n")
    (out / "firmware" / "mnist_golden.h").unlink()
    assert cli.main(["--quiet", "firmware", "--out", str(out)]) == cli.EXIT_ERROR
    err = capsys.readouterr().err
    assert ("differs from manifest.json: mnist_golden.h (missing), mnist_model_data.c (changed), extra.c (added)"
            in err and "--allow-modified" in err)


def test_edited_model_is_refused(emitted, tmp_path, capsys):
    out = _copy(emitted, tmp_path)
    model = bytearray((out / "model_int8.tflite").read_bytes())
    model[-1] ^= 1
    (out / "model_int8.tflite").write_bytes(bytes(model))
    assert cli.main(["--quiet", "firmware", "--out", str(out)]) == cli.EXIT_ERROR
    assert "../model_int8.tflite (changed)" in capsys.readouterr().err


@pytest.mark.parametrize("text", ['{"model": {"sha', "", "[1, 2]", "\xff\xfe"])
def test_broken_report_json_is_one_clear_error(emitted, tmp_path, capsys, text):
    out = _copy(emitted, tmp_path)
    (out / "report.json").write_bytes(text.encode("latin-1"))
    assert cli.main(["--quiet", "firmware", "--out", str(out)]) == cli.EXIT_ERROR
    err = capsys.readouterr().err
    assert err.startswith(f"tinyq: error: {out / 'report.json'}: ") and err.count("\n") == 1
    assert "broken or truncated" in err or "not the report" in err


@pytest.mark.integration
@pytest.mark.qemu
def test_allow_modified_builds_and_records_the_edits(emitted, tmp_path, capsys):
    out = _copy(emitted, tmp_path)
    settings = out / "firmware" / "mnist_model_settings.h"
    settings.write_text(settings.read_text() + "\n/* my note */\n")
    assert cli.main(["--quiet", "firmware", "--out", str(out), "--images", "20", "--allow-modified"]) == 0
    report = json.loads((out / "report.json").read_text())
    assert report["cortex_m4"]["modified_files"] == [{"name": "mnist_model_settings.h", "change": "changed"}]
    assert report["cortex_m4"]["bitexact_images"] == 20
    assert "mnist_model_settings.h (changed)" in capsys.readouterr().out


# --- the real command under signals: children die with it, the output stays ----------------------------------

def _descendants(pid: int) -> dict[procs.Proc, str]:
    """Every live descendant of `pid` (pid and start time) -> its command line (tests/procs.py: safe against
    processes that exit while /proc is read, and against reused pids)."""
    return procs.descendants(pid)


def _alive(children) -> list[procs.Proc]:
    return procs.alive(children)


@pytest.mark.parametrize("sig, code", [(signal.SIGINT, 130), pytest.param(signal.SIGTERM, 143, marks=pytest.mark.slow)],
                         ids=["SIGINT", "SIGTERM"])
def test_interrupted_demo_keeps_the_old_output_and_leaves_nothing(tmp_path, sig, code):
    out = _old_output(tmp_path)
    args = [sys.executable, "-m", "tinyq.cli", "demo", "--force", "--no-cortex-m", "--out", str(out)]
    proc = _start(args, "training or loading", stream="stderr")
    proc.send_signal(sig)
    assert proc.wait(60) == code
    assert proc.stderr.read().strip().splitlines()[-1] == ("tinyq: interrupted" if code == 130
                                                           else "tinyq: terminated (SIGTERM)")
    assert _contents(out) == OLD and _leftovers(out) == []


CHILD_DRIVER = r"""
import signal, sys
from tinyq import cli, native
signal.signal(signal.SIGTERM, cli._terminated)
print("go", flush=True)
native.run_child(["sh", "-c", "sleep 60; sleep 61"])  # quiet: no broken pipe would end it
"""


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM, signal.SIGKILL], ids=lambda s: s.name)
def test_a_quiet_child_and_its_children_die_with_tinyq(sig):
    proc = _start([sys.executable, "-c", CHILD_DRIVER], "go")
    try:
        deadline = time.monotonic() + 10
        children = {}
        while not any(c.startswith("sleep 60") for c in children.values()) and time.monotonic() < deadline:
            time.sleep(0.02)
            children = _descendants(proc.pid)
        assert any(c.startswith("sleep 60") for c in children.values()), children
        proc.send_signal(sig)
        proc.wait(10)
        deadline = time.monotonic() + 5  # a killed child goes at once; sleep 60 would stay for a minute
        while _alive(children) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert _alive(children) == [], {p: children[p] for p in _alive(children)}
    finally:
        proc.kill()
        proc.wait()


@pytest.mark.integration
@pytest.mark.qemu
@pytest.mark.parametrize("sig", [pytest.param(signal.SIGTERM, marks=pytest.mark.slow), signal.SIGKILL],
                         ids=["SIGTERM", "SIGKILL"])
def test_killed_firmware_run_leaves_no_children_and_the_output_whole(emitted, tmp_path, sig):
    out = _copy(emitted, tmp_path)
    before = _contents(out)
    args = [sys.executable, "-m", "tinyq.cli", "firmware", "--out", str(out), "--images", "10000"]
    proc = _start(args, "cross-compiling", stream="stderr", timeout=120)
    deadline = time.monotonic() + 60
    children: dict[int, str] = {}
    while not any("qemu-system-arm" in c for c in children.values()) and time.monotonic() < deadline:
        time.sleep(0.05)
        children = _descendants(proc.pid)
    assert any("qemu-system-arm" in c for c in children.values()), children
    proc.send_signal(sig)
    assert proc.wait(30) == (143 if sig is signal.SIGTERM else -9)
    deadline = time.monotonic() + 5  # QEMU alone would run on for far longer with 10,000 images
    while _alive(children) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert _alive(children) == [], {p: children[p] for p in _alive(children)}
    assert _contents(out) == before
    with outdir.claim(out, must_exist=True):
        pass
    assert _leftovers(out) == []
