"""Rendering of generated files from templates/: one Jinja environment, a banner, C literals and names, and
transactional writes (through tinyq.outdir)."""

from __future__ import annotations

import hashlib
from importlib import metadata
import os
import re
from dataclasses import dataclass
from pathlib import Path

import jinja2
import numpy as np

from . import __version__
from .errors import EmitError
from .outdir import claim
from .resources import templates_dir

TEMPLATE_DIR = templates_dir()

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


def comment_safe(text: str) -> str:
    """Text that can sit inside a C /* */ comment whatever a model file put in it: printable ASCII only, and no
    sequence that opens or closes a comment (a tensor named '*/ ...' must not end the comment and inject code)."""
    printable = "".join(ch if " " <= ch <= "~" else "?" for ch in str(text))
    while "*/" in printable or "/*" in printable:
        printable = printable.replace("*/", "*?").replace("/*", "/?")
    return printable


def c_string(text: str) -> str:
    """The body of a C string literal holding `text`: quotes, backslashes and anything but printable ASCII
    escaped (octal), and no trigraph, so a class name from the user's files cannot end the literal."""
    out = []
    for byte in str(text).encode("utf-8"):
        ch = chr(byte)
        if ch in '"\\?':
            out.append("\\" + ch)
        elif " " <= ch <= "~":
            out.append(ch)
        else:
            out.append(f"\\{byte:03o}")
    return "".join(out)


def make_banner(model_name: str, model_sha256: str) -> Banner:
    """The banner for a model, with the versions of the tools that produced it."""
    return Banner(__version__, comment_safe(model_name), model_sha256, _version("tensorflow"),
                  _version("tflite-micro"))


def _version(package: str) -> str:
    """An installed package's version, read from its metadata (importing TensorFlow for it would take seconds)."""
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:  # emission alone runs without it
        return "unknown"


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
    if _reserved(ident):
        ident = "m_" + ident
    return ident


RESERVED_PREFIXES = ("tq_", "tinyq")  # the runtime's and the stub's own symbols


def _reserved(ident: str) -> bool:
    return ident == "tq" or ident.startswith(RESERVED_PREFIXES)


def check_name(name: str) -> str:
    """A user's explicit --name, checked as given: a C identifier that is not a keyword and does not clash with
    the runtime's symbols (tq_*, tinyq*); returns it lower-cased, as the generated names use it."""
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
        hint = ""
        try:
            hint = f"; e.g. {c_identifier(name)}"
        except EmitError:
            pass
        raise EmitError(f"--name {name!r}: not a C identifier (letters, digits and _, not starting with a "
                        f"digit){hint}")
    ident = name.lower()
    if ident in C_KEYWORDS:
        raise EmitError(f"--name {name!r}: a C/C++ keyword or reserved name; the generated code would not compile")
    if _reserved(ident):
        raise EmitError(f"--name {name!r}: clashes with tinyq's runtime symbols (names starting tq_ or tinyq); "
                        f"e.g. my_{ident}")
    return ident


def environment() -> jinja2.Environment:
    """The one Jinja environment: strict about undefined values, no stray whitespace."""
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(TEMPLATE_DIR)),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        autoescape=jinja2.select_autoescape(enabled_extensions=("html.j2",), default_for_string=False, default=False),
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
    """Write everything into a staging folder, then swap it into place (tinyq.outdir); all or nothing."""
    out = Path(out_dir)
    if out.exists() and not overwrite:
        raise EmitError(f"{out}: already exists (pass overwrite=True to replace it)")
    _check_names(files, binaries)
    with claim(out, overwrite=True) as held, held.staged() as tmp:
        write_into(files, tmp, binaries)
    return [out / n for n in _names(files, binaries)]


def _names(files: list[GeneratedFile], binaries: dict[str, bytes] | None) -> list[str]:
    return [f.name for f in files] + list(binaries or {})


def _check_names(files: list[GeneratedFile], binaries: dict[str, bytes] | None) -> None:
    names = _names(files, binaries)
    if len(set(names)) != len(names):
        raise EmitError(f"duplicate output file names: {sorted(n for n in names if names.count(n) > 1)}")


def write_into(files: list[GeneratedFile], folder: Path, binaries: dict[str, bytes] | None = None) -> list[Path]:
    """Write the files into a (new or empty) folder inside a staging folder the caller holds; no swap of its own."""
    _check_names(files, binaries)
    folder.mkdir(exist_ok=True)
    for f in files:
        (folder / f.name).parent.mkdir(parents=True, exist_ok=True)
        (folder / f.name).write_text(f.text)
    for name, data in (binaries or {}).items():
        (folder / name).write_bytes(data)
    return [folder / n for n in _names(files, binaries)]


def camel(ident: str) -> str:
    """mnist_cnn -> MnistCnn, for C++ type names."""
    return "".join(part[:1].upper() + part[1:] for part in ident.split("_"))


def c_float(value: float) -> str:
    """A float32 literal that reads back as exactly the same float32."""
    text = np.format_float_positional(np.float32(value), unique=True, trim="0") if value else "0.0"
    if "e" not in text and "." not in text:
        text += ".0"
    return text + "f"
