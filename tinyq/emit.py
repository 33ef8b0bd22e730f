"""Rendering of generated files from templates/: one Jinja environment, a banner, transactional writes."""

from __future__ import annotations

import hashlib
import os
import re
from dataclasses import dataclass
from pathlib import Path

import jinja2

from . import __version__
from .errors import EmitError
from .lower import Optimize
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
    import tensorflow as tf

    try:
        from importlib.metadata import version

        tflm = version("tflite-micro")
    except Exception:  # noqa: BLE001 - the package may be absent where only emission runs
        tflm = "unknown"
    return Banner(__version__, comment_safe(model_name), model_sha256, tf.__version__, tflm)


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
    from .outdir import claim

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


@dataclass(frozen=True)
class TensorValues:
    """A model input or output as the settings template prints it."""

    dtype: str
    shape: str
    dims: int
    bytes: int
    scale: str
    zero_point: int


ARENA_MARGIN_BYTES = 1024
CLASS_LABELS = tuple(str(d) for d in range(10))


def c_float(value: float) -> str:
    """A float32 literal that reads back as exactly the same float32."""
    import numpy as np

    text = np.format_float_positional(np.float32(value), unique=True, trim="0") if value else "0.0"
    if "e" not in text and "." not in text:
        text += ".0"
    return text + "f"


def _tensor_values(q) -> TensorValues:
    import numpy as np

    return TensorValues(q.dtype, ", ".join(str(d) for d in q.shape), len(q.shape), int(np.prod(q.shape)),
                        c_float(q.scale), q.zero_point)


def golden_indices(labels, count: int) -> list[int]:
    """Up to `count` test-set indices: the first image of each class in class order, then the next images."""
    import numpy as np

    labels = np.asarray(labels)
    chosen = []
    for c in np.unique(labels):
        if len(chosen) < count:
            chosen.append(int(np.flatnonzero(labels == c)[0]))
    for i in range(len(labels)):
        if len(chosen) >= count:
            break
        if i not in chosen:
            chosen.append(i)
    return chosen


def camel(ident: str) -> str:
    """mnist_cnn -> MnistCnn, for C++ type names."""
    return "".join(part[:1].upper() + part[1:] for part in ident.split("_"))


@dataclass(frozen=True)
class PreprocessingValues:
    """The declared preprocessing as the settings template prints it; `table` rows of int8 literals per
    channel (256 values each) when the source is uint8, else empty."""

    description: str
    channels: int
    table: tuple[tuple[str, ...], ...]


def input_table(preprocessing, q) -> "object":
    """int8 model input for every raw uint8 value 0..255 (per channel): the declared preprocessing, then
    TFLite's QUANTIZE, exactly as Python feeds every runtime."""
    import numpy as np

    from .verify import quantize_input

    raw = np.repeat(np.arange(256, dtype=np.uint8)[:, None], preprocessing.channels, axis=1)
    return quantize_input(preprocessing.apply(raw), q).T  # (channels, 256)


def preprocessing_values(preprocessing, q, uint8_source: bool) -> PreprocessingValues:
    from .data import MNIST_PREPROCESSING

    pre = preprocessing or MNIST_PREPROCESSING
    table = ()
    if uint8_source and q.dtype == "int8":
        table = tuple(tuple(int_rows(row, 16)) for row in input_table(pre, q))
    return PreprocessingValues(pre.describe(), pre.channels, table)


@dataclass(frozen=True)
class Emission:
    """Every rendered firmware file of one model, and the C engine's figures when it was generated."""

    files: tuple[GeneratedFile, ...]
    engine: object | None


def emit(quantized, verify_result, out_dir: str | os.PathLike, name: str = "mnist", golden_count: int = 10,
         overwrite: bool = False, c_engine: bool = True, class_labels: tuple[str, ...] | None = CLASS_LABELS,
         preprocessing=None, uint8_source: bool = True, optimize: Optimize = Optimize.SPEED) -> list[Path]:
    """Render every firmware file of one model into `out_dir` (all or nothing) and return their paths."""
    emission = prepare(quantized, verify_result, name, golden_count, c_engine, class_labels, preprocessing,
                       uint8_source, optimize)
    return write_files(list(emission.files), out_dir, overwrite=overwrite)


def prepare(quantized, verify_result, name: str = "mnist", golden_count: int = 10, c_engine: bool = True,
            class_labels: tuple[str, ...] | None = CLASS_LABELS, preprocessing=None,
            uint8_source: bool = True, optimize: Optimize = Optimize.SPEED) -> Emission:
    """Render every firmware file of one model in memory; raises before anything is written.

    `class_labels` None: no label names (unknown, or not a classifier); `preprocessing` (default the MNIST
    0..1) goes into the settings header, with a raw-uint8 -> int8 input table when `uint8_source`; `optimize`
    picks the C engine's kernels (specialised per layer for speed, or the generic ones for size)."""
    import json

    if golden_count < 1:
        raise EmitError(f"golden_count must be >= 1, got {golden_count}")
    ident = c_identifier(name)
    macro = ident.upper()
    banner = make_banner(quantized.name, quantized.sha256)
    env = environment()
    inp = _tensor_values(quantized.input)
    out = _tensor_values(quantized.output)
    classifier = getattr(verify_result, "task", None) is None or verify_result.task.value == "classification"
    if class_labels is not None and out.bytes != len(class_labels):
        if class_labels is not CLASS_LABELS:
            raise EmitError(f"{len(class_labels)} class names for a model with {out.bytes} outputs")
        class_labels = tuple(str(i) for i in range(out.bytes))
    pre = preprocessing_values(preprocessing, quantized.input, uint8_source)
    common = dict(ident=ident, macro=macro)

    def guard(fname: str) -> str:
        return re.sub(r"[^0-9A-Za-z]", "_", fname).upper() + "_"

    files = []
    files.append(render(env, "model_data.h.j2", f"{ident}_model_data.h", banner,
                        guard=guard(f"{ident}_model_data.h"), **common))
    files.append(render(env, "model_data.c.j2", f"{ident}_model_data.c", banner, length=len(quantized.tflite),
                        rows=byte_rows(quantized.tflite, 12), **common))
    files.append(render(env, "model_settings.h.j2", f"{ident}_model_settings.h", banner,
                        guard=guard(f"{ident}_model_settings.h"), input=inp, output=out,
                        labels=([c_string(label) for label in class_labels]
                                if classifier and class_labels is not None else None),
                        num_classes=out.bytes if classifier else None,
                        preprocessing=pre,
                        op_count=len(quantized.ops), op_list=", ".join(quantized.op_names),
                        macs=verify_result.macs, arena_measured=verify_result.tflm_arena_bytes,
                        arena_margin=ARENA_MARGIN_BYTES, **common))
    from .tflm import resolver_values

    resolver = resolver_values(quantized.tflite, ident)
    files.append(render(env, "op_resolver.h.j2", f"{ident}_op_resolver.h", banner, **resolver))
    idx = golden_indices(verify_result.labels, golden_count)
    inputs = verify_result.int8_inputs.reshape(len(verify_result.int8_inputs), -1)
    outputs = verify_result.tflm_outputs.reshape(len(verify_result.tflm_outputs), -1)
    golden = dict(count=len(idx), input_bytes=inp.bytes, output_bytes=out.bytes, test_index=idx,
                  labels=[int(verify_result.labels[i]) for i in idx],
                  inputs=[int_rows(inputs[i], 16) for i in idx], outputs=[int_rows(outputs[i], 16) for i in idx])
    files.append(render(env, "golden.h.j2", f"{ident}_golden.h", banner, guard=guard(f"{ident}_golden.h"),
                        **golden, **common))
    files.append(render(env, "golden.c.j2", f"{ident}_golden.c", banner, **golden, **common))
    engine = None
    if c_engine:
        from .cengine import generate

        engine = generate(quantized.tflite, ident, banner, optimize)
        files.extend(engine.files)
    files.append(render(env, "tinyq_stub.h.j2", "tinyq_stub.h", banner, has_c_engine=engine is not None,
                        resolver_type=resolver["type_name"], **common))
    from .fwfolder import FolderFigures, folder_files

    figures = FolderFigures(
        tflite_bytes=len(quantized.tflite), tflm_arena_bytes=verify_result.tflm_arena_bytes,
        c_arena_bytes=engine.arena_bytes if engine else None, c_const_bytes=engine.const_bytes if engine else None,
        input_shape=inp.shape, input_scale=inp.scale.rstrip("f"), input_zero_point=inp.zero_point,
        output_shape=out.shape, output_scale=out.scale.rstrip("f"), output_zero_point=out.zero_point,
        macs=verify_result.macs)
    files.extend(folder_files(banner, ident, files, engine is not None, figures))
    manifest = {
        "generated_by": f"tinyq {banner.tinyq_version}",
        "versions": {"tinyq": banner.tinyq_version, "tensorflow": banner.tf_version,
                     "tflite_micro": banner.tflm_version},
        "model": {"name": quantized.name, "identifier": ident, "sha256": quantized.sha256,
                  "tflite_bytes": len(quantized.tflite),
                  "ops": [{"name": op.name, "version": op.version} for op in quantized.ops]},
        "quantization": {
            "input": {"shape": list(quantized.input.shape), "dtype": quantized.input.dtype,
                      "scale": quantized.input.scale, "zero_point": quantized.input.zero_point},
            "output": {"shape": list(quantized.output.shape), "dtype": quantized.output.dtype,
                       "scale": quantized.output.scale, "zero_point": quantized.output.zero_point},
        },
        "arena_bytes": {"tflm_measured": verify_result.tflm_arena_bytes,
                        "tflm_margin": ARENA_MARGIN_BYTES,
                        "c_engine": engine.arena_bytes if engine else None},
        "golden": {"count": len(idx), "test_index": idx},
        "c_engine": None if engine is None else {
            "optimize": engine.optimize.value, "arena_bytes": engine.arena_bytes,
            "scratch_bytes": engine.scratch_bytes,
            "calls": [{"op": op, "kernel": kernel} for op, kernel in engine.kernels]},
        "files": [{"name": f.name, "bytes": len(f.text.encode()), "sha256": f.sha256} for f in files],
    }
    files.append(GeneratedFile("manifest.json", json.dumps(manifest, indent=2, sort_keys=True) + "\n"))
    return Emission(tuple(files), engine)
