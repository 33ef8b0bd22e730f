"""Rendering of generated files from templates/: one Jinja environment, a banner, transactional writes."""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import jinja2

from . import __version__
from .errors import EmitError

TEMPLATE_DIR = Path(__file__).resolve().parent.parent / "templates"

C_KEYWORDS = frozenset(
    """auto break case char const continue default do double else enum extern float for goto if inline int long
    register restrict return short signed sizeof static struct switch typedef union unsigned void volatile while
    _Bool _Complex _Imaginary alignas alignof and asm bool catch class constexpr decltype delete explicit export
    false friend mutable namespace new noexcept not nullptr operator or private protected public static_assert
    template this throw true try typeid typename using virtual wchar_t xor main""".split())


@dataclass(frozen=True)
class Banner:
    """What every generated file says about where it came from (no timestamp: emission is deterministic)."""

    tinyq_version: str
    model_name: str
    model_sha256: str
    tf_version: str
    tflm_version: str


@dataclass(frozen=True)
class GeneratedFile:
    """One rendered file: its name in the output folder and its text."""

    name: str
    text: str

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.text.encode()).hexdigest()


def make_banner(model_name: str, model_sha256: str) -> Banner:
    """The banner for a model, with the versions of the tools that produced it."""
    import tensorflow as tf

    try:
        from importlib.metadata import version

        tflm = version("tflite-micro")
    except Exception:  # noqa: BLE001 - the package may be absent where only emission runs
        tflm = "unknown"
    return Banner(__version__, model_name, model_sha256, tf.__version__, tflm)


def c_identifier(name: str) -> str:
    """A safe lower-case C identifier from a user's model name; fixes what it can, refuses what it cannot."""
    base = os.path.basename(str(name).replace("\\", "/"))
    ident = re.sub(r"[^0-9a-zA-Z_]", "_", base).strip("_").lower()
    ident = re.sub(r"_+", "_", ident)
    if not ident:
        raise EmitError(f"model name {name!r}: nothing left to form a C identifier")
    if ident[0].isdigit():
        ident = "m_" + ident
    if ident in C_KEYWORDS:
        ident = ident + "_model"
    return ident


def environment() -> jinja2.Environment:
    """The one Jinja environment: strict about undefined values, no stray whitespace."""
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(TEMPLATE_DIR)),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        autoescape=False,
    )


def render(env: jinja2.Environment, template: str, out_name: str, banner: Banner, **values) -> GeneratedFile:
    """Render `template` with plain values and the banner into a file named `out_name`."""
    try:
        text = env.get_template(template).render(banner=banner, file_name=out_name, **values)
    except jinja2.TemplateError as exc:
        raise EmitError(f"template {template}: {exc}") from exc
    return GeneratedFile(out_name, text)


def byte_rows(data: bytes, per_row: int = 12) -> list[str]:
    """Hex byte literals, `per_row` to a line, for a C array initialiser."""
    return [", ".join(f"0x{b:02x}" for b in data[i:i + per_row]) for i in range(0, len(data), per_row)]


def int_rows(values, per_row: int = 16) -> list[str]:
    """Decimal integer literals, `per_row` to a line."""
    vals = [str(int(v)) for v in values]
    return [", ".join(vals[i:i + per_row]) for i in range(0, len(vals), per_row)]


def write_files(files: list[GeneratedFile], out_dir: str | os.PathLike, overwrite: bool = False,
                binaries: dict[str, bytes] | None = None) -> list[Path]:
    """Write everything into a temporary sibling folder, then move it into place; all or nothing."""
    out = Path(out_dir)
    if out.exists() and not overwrite:
        raise EmitError(f"{out}: already exists (pass overwrite=True to replace it)")
    names = [f.name for f in files] + list(binaries or {})
    if len(set(names)) != len(names):
        raise EmitError(f"duplicate output file names: {sorted(n for n in names if names.count(n) > 1)}")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        for f in files:
            (tmp / f.name).write_text(f.text)
        for name, data in (binaries or {}).items():
            (tmp / name).write_bytes(data)
        if out.exists():
            old = out.with_name(f".{out.name}.old{os.getpid()}")
            os.replace(out, old)
            os.replace(tmp, out)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, out)
    except OSError as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        raise EmitError(f"{out}: cannot write generated files: {exc}") from exc
    return [out / n for n in names]
