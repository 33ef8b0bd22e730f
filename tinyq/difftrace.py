"""Tracing for `tinyq diff`: every op's output of one int8 model in each runtime, one int8 row per input (every
op's output tensor in op order; a RESHAPE's output is its input's bytes): LiteRT (reference and default kernels)
and TFLM in their preserve-all-tensors modes, and the generated C engine built with its trace hook (`make TRACE=1`)
on the host and on a Cortex-M core in QEMU."""

from __future__ import annotations

import enum
import os
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .engine import Graph, Lowered
from .errors import BuildError, VerificationError
from .native import Runtime as NativeRuntime
from .native import native_quiet
from .targets import QEMU_MACHINES
from .targets.firmware import build_stub, run_binary
from .targets.qemu import check_toolchain, run_qemu
from .runtimes import HOST_ARENA_BYTES


class Runtime(enum.Enum):
    """The runtimes `tinyq diff` can trace, by the name it prints and writes."""

    LITERT_REF = "litert-ref"
    LITERT = "litert"
    TFLM = "tflm"
    C_HOST = "c-host"
    C_CORTEX_M0 = "c-cortex-m0"
    C_CORTEX_M3 = "c-cortex-m3"
    C_CORTEX_M4 = "c-cortex-m4"
    C_CORTEX_M7 = "c-cortex-m7"
    C_CORTEX_M33 = "c-cortex-m33"
    C_CORTEX_M55 = "c-cortex-m55"


C_TARGETS = {"host": Runtime.C_HOST, **{t: Runtime(f"c-{t}") for t in QEMU_MACHINES}}


@dataclass(frozen=True)
class TracedOp:
    """One op of the trace: its output tensor and where that tensor's bytes sit in a trace row."""

    index: int
    name: str
    tensor_index: int
    tensor: str
    layer: str
    size: int
    offset: int

    @property
    def columns(self) -> slice:
        return slice(self.offset, self.offset + self.size)


@dataclass(frozen=True)
class Layout:
    """Every op's output tensor, in op order, concatenated into one int8 row per input."""

    ops: tuple[TracedOp, ...]
    width: int
    input_tensor: int
    final: int  # position in `ops` of the op writing the model's output

    @property
    def output(self) -> TracedOp:
        return self.ops[self.final]

    @classmethod
    def of(cls, graph: Graph) -> "Layout":
        ops, offset = [], 0
        for op in graph.operators:
            t = graph.tensors[op.outputs[0]]
            if t.dtype != "int8":
                raise VerificationError(f"{graph.where(op)}: output tensor {t.name!r} is {t.dtype}; tinyq diff "
                                        f"compares int8 tensors only")
            ops.append(TracedOp(op.index, op.name, t.index, t.name, graph.layer(t.index), t.size, offset))
            offset += t.size
        final = next(k for k, op in enumerate(ops) if op.tensor_index == graph.outputs[0])
        return cls(tuple(ops), offset, graph.inputs[0], final)


# ---- tracing each runtime ----

def trace_litert(tflite: bytes, inputs: np.ndarray, layout: Layout, reference: bool) -> np.ndarray:
    """Every op's output in LiteRT (reference or default kernels), preserve-all-tensors mode."""
    from ai_edge_litert.interpreter import Interpreter, OpResolverType  # native runtime, loaded on use

    kind = OpResolverType.BUILTIN_REF if reference else OpResolverType.AUTO
    with native_quiet(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # LiteRT warns that preserving all tensors is for debugging: it is
        interp = Interpreter(model_content=tflite, experimental_op_resolver_type=kind, num_threads=1,
                             experimental_preserve_all_tensors=True)
        interp.allocate_tensors()
    out = np.empty((len(inputs), layout.width), np.int8)
    for i, x in enumerate(inputs):
        interp.set_tensor(layout.input_tensor, x.reshape((1,) + x.shape))
        interp.invoke()
        for op in layout.ops:
            out[i, op.columns] = interp.get_tensor(op.tensor_index).reshape(-1)
    return out


def trace_tflm(tflite: bytes, inputs: np.ndarray, layout: Layout) -> np.ndarray:
    """Every op's output in the TFLM Python runtime, kPreserveAllTensors mode."""
    from tflite_micro import runtime  # native runtime, loaded on use


    interp = runtime.Interpreter.from_bytes(tflite, arena_size=HOST_ARENA_BYTES,
                                            intrepreter_config=runtime.InterpreterConfig.kPreserveAllTensors)
    out = np.empty((len(inputs), layout.width), np.int8)
    for i, x in enumerate(inputs):
        interp.set_input(x.reshape((1,) + x.shape), 0)
        interp.invoke()
        for op in layout.ops:
            out[i, op.columns] = interp.GetTensor(op.tensor_index, 0)["tensor_data"].reshape(-1)
    return out


def trace_python_runtimes(pool, workers, runtimes, tflite: bytes, x: np.ndarray, layout: Layout) -> list:
    """Futures, each of {runtime: trace}, of the Python runtimes run in the native workers (a crash is a
    NativeCrash, not a dead tinyq): TFLM in its worker beside LiteRT's, whose two kernel sets take turns."""
    def tflm() -> dict:
        return {Runtime.TFLM: workers.call(NativeRuntime.TFLM, f"TFLM trace of {len(x)} inputs", trace_tflm,
                                           tflite, x, layout)}

    def litert(which: list) -> dict:
        return {r: workers.call(NativeRuntime.LITERT, f"{r.value} trace of {len(x)} inputs", trace_litert, tflite,
                                x, layout, r is Runtime.LITERT_REF) for r in which}

    lite = [r for r in runtimes if r in (Runtime.LITERT_REF, Runtime.LITERT)]
    return ([pool.submit(tflm)] if Runtime.TFLM in runtimes else []) + ([pool.submit(litert, lite)] if lite else [])


def build_trace_stub(fw_dir: str | os.PathLike, build_dir: str | os.PathLike, target: str) -> Path:
    """The stub with the generated C engine and its trace hook (`make TRACE=1`), for the host or a Cortex-M."""
    sources = list(Path(fw_dir).glob("*_model.c"))
    if not sources:
        raise BuildError(f"{fw_dir}: no generated C engine (*_model.c); the folder was emitted without it")
    if "TINYQ_TRACE(" not in sources[0].read_text():
        raise BuildError(f"{sources[0]}: has no TINYQ_TRACE hooks (written by an older tinyq); emit the folder again")
    if target != "host":
        check_toolchain()
    return build_stub(fw_dir, build_dir, target=target, backend="c", opt="-O2", extra=("TRACE=1",))


def run_c_trace(exe: Path, target: str, inputs: np.ndarray, work: Path) -> bytes:
    """Run the trace stub over raw int8 inputs; the raw trace file."""
    work.mkdir(parents=True, exist_ok=True)
    (work / "in.bin").write_bytes(np.ascontiguousarray(inputs.reshape(len(inputs), -1)).tobytes())
    if target == "host":
        proc = run_binary([str(exe), "in.bin", "out.bin", "trace.bin"], cwd=str(work))
        if proc.returncode != 0:
            raise BuildError(f"{exe}: trace run of {len(inputs)} inputs exited {proc.returncode}: "
                             f"{proc.stderr.strip()[-300:]}")
    else:
        run = run_qemu(exe, ("in.bin", "out.bin", "trace.bin"), cwd=work, timeout=600.0 + 5.0 * len(inputs),
                       target=target)
        if run.returncode != 0:
            raise BuildError(f"{exe}: trace run of {len(inputs)} inputs in QEMU exited {run.returncode}: "
                             f"{run.stdout.strip()[-300:]}")
    path = work / "trace.bin"
    return path.read_bytes() if path.exists() else b""


def parse_c_trace(data: bytes, n: int, graph: Graph, lowered: Lowered, layout: Layout, inputs: np.ndarray,
                  where: str) -> np.ndarray:
    """Trace rows from the C engine's records (op index, bytes, data per kernel call); RESHAPE outputs are
    their input's bytes. Raises if the records do not follow the model's kernel calls one for one."""
    calls = lowered.calls
    fields = []
    for k, call in enumerate(calls):
        fields += [(f"h{k}", "<i4", (2,)), (f"d{k}", "i1", (graph.tensors[call.output].nbytes,))]
    record = np.dtype(fields)
    if len(data) != n * record.itemsize:
        raise VerificationError(f"{where}: trace of {n} inputs has {len(data)} bytes, expected {n * record.itemsize}"
                                f" ({len(calls)} kernel calls per input): the generated C does not follow the model")
    rows = np.frombuffer(data, record, count=n)
    by_tensor = {layout.input_tensor: inputs.reshape(n, -1)}
    for k, call in enumerate(calls):
        head = rows[f"h{k}"]
        expected = (call.op_index, graph.tensors[call.output].nbytes)
        bad = np.flatnonzero((head[:, 0] != expected[0]) | (head[:, 1] != expected[1]))
        if bad.size:
            got = tuple(int(v) for v in head[bad[0]])
            raise VerificationError(f"{where}: trace record {k} of input {int(bad[0])} is op #{got[0]} with {got[1]} "
                                    f"bytes, expected op #{expected[0]} {call.op_name} with {expected[1]} bytes")
        by_tensor[call.output] = rows[f"d{k}"]
    aliases = dict(lowered.aliases)
    out = np.empty((n, layout.width), np.int8)
    for op in layout.ops:
        t = op.tensor_index
        while t not in by_tensor:
            t = aliases[t]
        out[:, op.columns] = by_tensor[t]
    return out
