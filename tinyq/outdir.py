"""The one writer of output folders: a lock per folder, checks before the long steps, a staging folder that
replaces the old output atomically, recovery from runs that were killed half-way, and the manifest check of a
folder read back in.

Beside an output folder OUT live, all hidden: `.OUT.lock` while a run holds OUT (flock; the holder's pid),
staging folders `.OUT.out.PID.XXXXXXXX` and, for an instant during the swap, the old output `.OUT.old.PID`.
The old output stays whole until the new one is complete: the swap is two renames with SIGINT/SIGTERM held
back; a run killed between them leaves the old output aside, and the next run into OUT puts it back. A run
interrupted during the swap still removes the old output once the new one is in place. Staging folders and
set-aside outputs of dead runs (names of this pattern only, pid not running) are removed by the next run.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import json
import os
import re
import secrets
import shutil
import signal
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from .errors import OutputError

MIN_FREE_BYTES = 64 << 20  # a run's staging folder holds the firmware files and two builds of the stub
_DISK_ERRNOS = {errno.ENOSPC: "no space left on the device", errno.EROFS: "read-only file system",
                errno.EACCES: "permission denied", errno.EPERM: "operation not permitted",
                errno.EDQUOT: "disk quota exceeded"}


def disk_error(exc: OSError) -> str | None:
    """One line for a full, read-only or forbidden location, naming the path; None for other OSErrors."""
    reason = _DISK_ERRNOS.get(exc.errno)
    if reason is None:
        return None
    return f"{exc.filename}: cannot write: {reason}" if exc.filename else f"cannot write: {reason}"


def _as_output_error(exc: OSError, doing: str) -> OutputError:
    return OutputError(f"{doing}: {disk_error(exc) or exc}")


def _lock_path(out: Path) -> Path:
    return out.parent / f".{out.name}.lock"


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _leftovers(out: Path) -> tuple[list[tuple[Path, int]], list[tuple[Path, int]]]:
    """Staging folders and set-aside old outputs beside `out`, each with the pid of the run that made it."""
    staging = re.compile(re.escape(f".{out.name}.out.") + r"(\d+)\.[0-9a-f]+")
    aside = re.compile(re.escape(f".{out.name}.old.") + r"(\d+)")
    stage, old = [], []
    for entry in out.parent.iterdir() if out.parent.is_dir() else ():
        if m := staging.fullmatch(entry.name):
            stage.append((entry, int(m.group(1))))
        elif m := aside.fullmatch(entry.name):
            old.append((entry, int(m.group(1))))
    return stage, old


@dataclass(frozen=True)
class Recovery:
    """What a claim found of earlier, killed runs: an old output put back, leftovers removed."""

    restored: Path | None
    removed: tuple[Path, ...]


def recover(out: Path) -> Recovery:
    """Put back an old output set aside by a run killed during its swap; remove dead runs' leftovers.
    Call only while holding the folder's lock."""
    stage, old = _leftovers(out)
    restored = None
    removed = []
    for path, pid in old:
        if pid != os.getpid() and _pid_alive(pid):
            continue
        if not out.exists() and restored is None:
            os.replace(path, out)
            restored = path
        else:
            shutil.rmtree(path, ignore_errors=True)
            removed.append(path)
    for path, pid in stage:
        if pid != os.getpid() and not _pid_alive(pid):
            shutil.rmtree(path, ignore_errors=True)
            removed.append(path)
    return Recovery(restored, tuple(removed))


@contextlib.contextmanager
def _signals_held() -> Iterator[None]:
    """SIGINT and SIGTERM wait until the block ends (then they take effect), so two renames stay together.
    Python-level deferral, since blocking the signal in one thread does not stop TF's threads taking it."""
    pending: list[int] = []
    try:
        previous = {s: signal.signal(s, lambda signum, _frame: pending.append(signum))
                    for s in (signal.SIGINT, signal.SIGTERM)}
    except ValueError:  # not the main thread: signals reach the main thread's handlers anyway
        yield
        return
    try:
        yield
    finally:
        for s, handler in previous.items():
            signal.signal(s, signal.SIG_DFL if handler is None else handler)
        if pending:
            signal.raise_signal(pending[0])


def check_folder(out: Path, overwrite: bool) -> None:
    """Refuse a file, or a non-empty folder unless told to replace it."""
    if out.exists() and not out.is_dir():
        raise OutputError(f"{out}: exists and is not a folder")
    if out.exists() and any(out.iterdir()) and not overwrite:
        raise OutputError(f"{out}: exists and is not empty (use --force / overwrite=True to replace it)")


def check_space(out: Path, min_free_bytes: int) -> None:
    """Refuse a location with less than `min_free_bytes` free, before any long step."""
    free = shutil.disk_usage(out.parent).free
    if free < min_free_bytes:
        raise OutputError(f"{out.parent}: only {free >> 20} MiB free; tinyq needs at least {min_free_bytes >> 20} "
                          f"MiB there to stage its output")


class Claim:
    """An output folder held by this run: locked, checked, recovered; `staged()` writes its new content."""

    def __init__(self, out: Path, overwrite: bool, fd: int, recovery: Recovery) -> None:
        self.out, self.overwrite, self.recovery = out, overwrite, recovery

    @contextlib.contextmanager
    def staged(self) -> Iterator[Path]:
        """A new, empty staging folder beside the output; when the block succeeds it replaces the output
        (the old one stays whole until then), when it fails or is interrupted it vanishes."""
        check_folder(self.out, self.overwrite)
        tmp = self.out.parent / f".{self.out.name}.out.{os.getpid()}.{secrets.token_hex(4)}"
        try:
            os.mkdir(tmp)  # mode 0o777 less the umask: the user's usual permissions, unlike mkdtemp's 0700
        except OSError as exc:
            raise _as_output_error(exc, f"{self.out}: creating the staging folder") from exc
        try:
            yield tmp
            self._swap(tmp)
        except OSError as exc:
            shutil.rmtree(tmp, ignore_errors=True)
            if disk_error(exc) is None:
                raise
            raise _as_output_error(exc, f"{self.out}: writing the new output") from exc
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise

    def _swap(self, tmp: Path) -> None:
        aside = self.out.parent / f".{self.out.name}.old.{os.getpid()}"
        try:
            with _signals_held():  # a signal held back here is raised as the block ends: hence the finally
                if self.out.exists():
                    os.replace(self.out, aside)
                os.replace(tmp, self.out)
        except OSError as exc:
            if aside.exists() and not self.out.exists():
                os.replace(aside, self.out)
            raise _as_output_error(exc, f"{self.out}: replacing the output folder") from exc
        finally:
            if self.out.exists():  # the new output is in place (or the old one back): the aside copy is waste
                shutil.rmtree(aside, ignore_errors=True)


@contextlib.contextmanager
def claim(out_dir: str | os.PathLike, overwrite: bool = False, min_free_bytes: int = MIN_FREE_BYTES,
          must_exist: bool = False) -> Iterator[Claim]:
    """Lock `out_dir` for this run (a second run is refused, naming the first one's pid), recover what killed
    runs left, and check it can be written: all before any long step. `must_exist` is for commands that
    update an existing output (`tinyq firmware`)."""
    out = Path(out_dir).absolute()
    if must_exist and not out.is_dir():
        raise OutputError(f"{out}: no such folder")
    check_folder(out, overwrite or must_exist)
    fd = _lock(out)
    try:
        recovery = recover(out)
        check_folder(out, overwrite or must_exist)
        check_space(out, min_free_bytes)
        held = Claim(out, overwrite, fd, recovery)
    except BaseException:
        _unlock(out, fd)
        raise
    try:
        yield held
    finally:
        _unlock(out, fd)


def _lock(out: Path) -> int:
    """flock the lock file beside `out` (created if needed), recording our pid in it; refuse if held."""
    path = _lock_path(out)
    while True:
        try:
            out.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
        except OSError as exc:
            raise _as_output_error(exc, f"{out}: cannot write the output") from exc
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            raise OutputError(f"{out}: another tinyq run (pid {holder}) is writing this folder; wait for it to "
                              f"finish or choose another --out") from None
        try:
            same = os.stat(path).st_ino == os.fstat(fd).st_ino
        except FileNotFoundError:
            same = False
        if same:  # else the holder removed the file as we opened it: lock the new one
            break
        os.close(fd)
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    return fd


def _unlock(out: Path, fd: int) -> None:
    """Remove the lock file while still holding it (so no lock file lingers), then release it."""
    with contextlib.suppress(OSError):
        os.unlink(_lock_path(out))
    os.close(fd)


@contextlib.contextmanager
def claimed(out_dir, overwrite: bool = False) -> Iterator[Claim]:
    """The caller's Claim when given one, else a claim of `out_dir` for the duration of the block."""
    if isinstance(out_dir, Claim):
        yield out_dir
        return
    with claim(out_dir, overwrite) as fresh:
        yield fresh


def write_text_atomic(path: Path, text: str) -> None:
    """Replace one file inside a claimed folder: write a sibling, then rename over it."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        tmp.write_text(text)
        os.replace(tmp, path)
    except OSError as exc:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise _as_output_error(exc, f"{path}: cannot write") from exc


@dataclass(frozen=True)
class FileChange:
    """A file of the emitted firmware folder that differs from manifest.json: changed, missing or added."""

    name: str
    change: str


def check_manifest(out: Path) -> tuple[FileChange, ...]:
    """Every file of OUT/firmware and OUT/model_int8.tflite against firmware/manifest.json (sha256); the
    differences, empty when the folder is as tinyq wrote it. A missing or unreadable manifest raises."""
    fw = out / "firmware"
    manifest = read_json(fw / "manifest.json", "the manifest of the generated files")
    try:
        listed = {str(f["name"]): str(f["sha256"]) for f in manifest["files"]}
        listed["../model_int8.tflite"] = str(manifest["model"]["sha256"])
    except (KeyError, TypeError) as exc:
        raise OutputError(f"{fw / 'manifest.json'}: not a tinyq manifest (no {exc} entry)") from exc
    changes = []
    for name, digest in sorted(listed.items()):
        path = (fw / name).resolve()
        if not path.is_file():
            changes.append(FileChange(name, "missing"))
        elif hashlib.sha256(path.read_bytes()).hexdigest() != digest:
            changes.append(FileChange(name, "changed"))
    present = {p.relative_to(fw).as_posix() for p in fw.rglob("*") if p.is_file()}
    for name in sorted(present - set(listed) - {"manifest.json"}):
        changes.append(FileChange(name, "added"))
    return tuple(changes)


def read_json(path: Path, what: str) -> dict:
    """A JSON object from a file tinyq wrote, or one clear error saying how it is broken."""
    try:
        value = json.loads(path.read_text())
    except FileNotFoundError:
        raise OutputError(f"{path}: missing ({what}); --out must name a folder written by `tinyq demo` or "
                         f"`tinyq convert`") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        where = f" at line {exc.lineno} column {exc.colno}" if isinstance(exc, json.JSONDecodeError) else ""
        raise OutputError(f"{path}: broken or truncated ({what}): not valid JSON{where}; rerun `tinyq demo` or "
                         f"`tinyq convert` to write it again") from None
    if not isinstance(value, dict):
        raise OutputError(f"{path}: not {what}: a JSON {type(value).__name__}, expected an object")
    return value
