"""Many generated C engines in one host executable, for the fast tests.

Each model's engine (tinyq.engine.generate, a fixed banner) is written beside tinyq's C runtime and a small
main.c that picks a model by name, reads int8 inputs back to back on stdin and writes the outputs on stdout.
Everything compiles in one gcc call per source (two at a time) with -O2 -std=c99 -Wall -Wextra -Werror, so a
whole test module pays for one build.
"""

from __future__ import annotations

import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from tinyq.engine import generate, read_graph
from tinyq.render import Banner, environment
from tinyq.fwfolder import runtime_files
from tinyq.engine import Optimize, Rounding

BANNER = Banner("test", "fast test model", "0" * 64, "none", "none")
CFLAGS = ["-O2", "-std=c99", "-Wall", "-Wextra", "-Werror"]
SANITIZE = ["-fsanitize=address,undefined", "-fno-sanitize-recover=all", "-fno-omit-frame-pointer"]

MAIN = r"""
#include <stdint.h>
#include <stdio.h>
#include <string.h>
%(includes)s

typedef int (*invoke_fn)(const int8_t *, int8_t *);
static const struct { const char *name; int in_bytes; int out_bytes; invoke_fn invoke; } MODELS[] = {
%(rows)s
};

int main(int argc, char **argv)
{
    static int8_t in[1 << 16], out[1 << 16];
    size_t m;
    if (argc != 2) {
        return 2;
    }
    for (m = 0; m < sizeof(MODELS) / sizeof(MODELS[0]); m++) {
        if (strcmp(MODELS[m].name, argv[1]) == 0) {
            while (fread(in, 1, (size_t)MODELS[m].in_bytes, stdin) == (size_t)MODELS[m].in_bytes) {
                if (MODELS[m].invoke(in, out) != 0) {
                    return 3;
                }
                fwrite(out, 1, (size_t)MODELS[m].out_bytes, stdout);
            }
            return 0;
        }
    }
    return 4;
}
"""


class HostEngines:
    """The built executable and what each model takes and gives."""

    def __init__(self, exe: Path, sizes: dict[str, tuple[int, int]]) -> None:
        self.exe = exe
        self.sizes = sizes

    def run(self, name: str, inputs: np.ndarray) -> np.ndarray:
        in_bytes, out_bytes = self.sizes[name]
        x = np.ascontiguousarray(inputs, np.int8).reshape(-1, in_bytes)
        proc = subprocess.run([str(self.exe), name], input=x.tobytes(), capture_output=True, timeout=60)
        assert proc.returncode == 0, f"{name}: exit {proc.returncode}: {proc.stderr[-2000:]!r}"
        return np.frombuffer(proc.stdout, np.int8).reshape(len(x), out_bytes)


def build(models: dict[str, bytes], folder: Path, optimizes=(Optimize.SPEED, Optimize.SIZE),
          sanitize: bool = False, rounding: Rounding = Rounding.DOUBLE) -> HostEngines:
    """One executable holding every model's engine for each of `optimizes`, named <model>_<speed|size>, all
    requantizing under `rounding` (one tq_rounding.h for the shared runtime); with `sanitize`, built under
    ASan+UBSan (any report aborts the run, which `run` then fails on)."""
    flags = CFLAGS + (SANITIZE if sanitize else [])
    folder.mkdir(parents=True, exist_ok=True)
    for f in runtime_files(environment(), BANNER):  # the runtime as an emitted firmware folder holds it
        (folder / f.name).write_text(f.text)
    sizes, includes, rows = {}, [], []
    for model, tflite in models.items():
        for optimize in optimizes:
            name = f"{model}_{Optimize(optimize).value}"
            engine = generate(read_graph(tflite), name, BANNER, optimize, rounding)
            for f in engine.files:
                (folder / f.name).write_text(f.text)
            sizes[name] = (engine.input_bytes, engine.output_bytes)
            includes.append(f'#include "{name}_model.h"')
            rows.append(f'    {{"{name}", {engine.input_bytes}, {engine.output_bytes}, {name}_invoke}},')
    (folder / "main.c").write_text(MAIN % {"includes": "\n".join(includes), "rows": "\n".join(rows)})
    sources = sorted(folder.glob("*.c"))

    def compile_one(src: Path) -> Path:
        obj = src.with_suffix(".o")
        proc = subprocess.run(["gcc", *flags, "-I", str(folder), "-c", str(src), "-o", str(obj)],
                              capture_output=True, text=True)
        assert proc.returncode == 0, f"{src.name} does not compile:\n{proc.stderr[-4000:]}"
        return obj

    with ThreadPoolExecutor(2) as pool:
        objects = list(pool.map(compile_one, sources))
    exe = folder / "engines"
    proc = subprocess.run(["gcc", *(SANITIZE if sanitize else []), *map(str, objects), "-o", str(exe)],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-4000:]
    return HostEngines(exe, sizes)
