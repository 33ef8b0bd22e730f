"""The firmware folder of one model, rendered in memory and written all or nothing: TFLM's model array, op
resolver and settings, golden vectors, the C engine (tinyq.engine) and the folder's build files (tinyq.fwfolder).
The render utilities are tinyq.render."""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .data import MNIST_PREPROCESSING
from .engine import Optimize, Rounding, generate
from .engine.cengine import ROUNDING_DESCRIPTION
from .errors import EmitError
from .fwfolder import FolderFigures, folder_files
from .render import (GeneratedFile, byte_rows, c_float, c_identifier, c_string, environment,
                     int_rows, make_banner, render, write_files)
from .tflm import resolver_values
from .verify import quantize_input


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
# Who computed golden outputs not TFLM's (the `expected_outputs` of prepare), per requantization rule.
EXPECTED_FROM = {Rounding.SINGLE: "tinyq's C engine built with single rounding (TFLITE_SINGLE_ROUNDING)",
                 Rounding.DOUBLE: "tinyq's C engine"}
CLASS_LABELS = tuple(str(d) for d in range(10))


def _tensor_values(q) -> TensorValues:
    return TensorValues(q.dtype, ", ".join(str(d) for d in q.shape), len(q.shape), int(np.prod(q.shape)),
                        c_float(q.scale), q.zero_point)


def golden_indices(labels, count: int) -> list[int]:
    """Up to `count` test-set indices: the first image of each class in class order, then the next images."""
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
    raw = np.repeat(np.arange(256, dtype=np.uint8)[:, None], preprocessing.channels, axis=1)
    return quantize_input(preprocessing.apply(raw), q).T  # (channels, 256)


def preprocessing_values(preprocessing, q, uint8_source: bool) -> PreprocessingValues:
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
         preprocessing=None, uint8_source: bool = True, optimize: Optimize = Optimize.SPEED,
         rounding: Rounding = Rounding.DOUBLE, expected_outputs: np.ndarray | None = None) -> list[Path]:
    """Render every firmware file of one model into `out_dir` (all or nothing) and return their paths."""
    emission = prepare(quantized, verify_result, name, golden_count, c_engine, class_labels, preprocessing,
                       uint8_source, optimize, rounding, expected_outputs)
    return write_files(list(emission.files), out_dir, overwrite=overwrite)


def prepare(quantized, verify_result, name: str = "mnist", golden_count: int = 10, c_engine: bool = True,
            class_labels: tuple[str, ...] | None = CLASS_LABELS, preprocessing=None,
            uint8_source: bool = True, optimize: Optimize = Optimize.SPEED, rounding: Rounding = Rounding.DOUBLE,
            expected_outputs: np.ndarray | None = None) -> Emission:
    """Render every firmware file of one model in memory; raises before anything is written.

    `class_labels` None: no label names (unknown, or not a classifier); `preprocessing` (default the MNIST
    0..1) goes into the settings header, with a raw-uint8 -> int8 input table when `uint8_source`; `optimize`
    picks the C engine's kernels (specialised per layer for speed, or the generic ones for size) and `rounding`
    their requantization rule. The golden outputs are TFLM's unless `expected_outputs` (one row per test input)
    gives them: a single-rounding engine's golden vectors cannot come from pip TFLM, which rounds twice."""
    rounding = Rounding(rounding)
    if rounding is Rounding.SINGLE and (expected_outputs is None or not c_engine):
        raise EmitError("single rounding needs the C engine and its expected outputs (expected_outputs): the "
                        "verification's TFLM outputs are double-rounded, so golden vectors from them would not match")
    if golden_count < 1:
        raise EmitError(f"golden_count must be >= 1, got {golden_count}")
    ident = c_identifier(name)
    graph = quantized.graph
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
                        arena_margin=ARENA_MARGIN_BYTES, rounding=rounding.value,
                        rounding_description=ROUNDING_DESCRIPTION[rounding], **common))
    resolver = resolver_values(graph, ident)
    files.append(render(env, "op_resolver.h.j2", f"{ident}_op_resolver.h", banner, **resolver))
    idx = golden_indices(verify_result.labels, golden_count)
    inputs = verify_result.int8_inputs.reshape(len(verify_result.int8_inputs), -1)
    outputs = np.asarray(verify_result.tflm_outputs if expected_outputs is None else expected_outputs)
    outputs = outputs.reshape(len(verify_result.int8_inputs), -1)
    expected_from = None if expected_outputs is None else EXPECTED_FROM[rounding]
    golden = dict(count=len(idx), input_bytes=inp.bytes, output_bytes=out.bytes, test_index=idx,
                  expected_from=expected_from,
                  labels=[int(verify_result.labels[i]) for i in idx],
                  inputs=[int_rows(inputs[i], 16) for i in idx], outputs=[int_rows(outputs[i], 16) for i in idx])
    files.append(render(env, "golden.h.j2", f"{ident}_golden.h", banner, guard=guard(f"{ident}_golden.h"),
                        **golden, **common))
    files.append(render(env, "golden.c.j2", f"{ident}_golden.c", banner, **golden, **common))
    engine = None
    if c_engine:
        engine = generate(graph, ident, banner, optimize, rounding)
        files.extend(engine.files)
    files.append(render(env, "tinyq_stub.h.j2", "tinyq_stub.h", banner, has_c_engine=engine is not None,
                        resolver_type=resolver["type_name"], **common))
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
            "optimize": engine.optimize.value, "rounding": engine.rounding.value, "arena_bytes": engine.arena_bytes,
            "scratch_bytes": engine.scratch_bytes,
            "calls": [{"op": op, "kernel": kernel} for op, kernel in engine.kernels]},
        "files": [{"name": f.name, "bytes": len(f.text.encode()), "sha256": f.sha256} for f in files],
    }
    files.append(GeneratedFile("manifest.json", json.dumps(manifest, indent=2, sort_keys=True) + "\n"))
    return Emission(tuple(files), engine)
