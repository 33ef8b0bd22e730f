"""Modelled cycles of tinyq's engine on the Cortex-M0, M4 and M7 beside QEMU's instruction counts, and what the
block log costs: for each folder written by `tinyq demo`/`convert`, each core is built, its golden vectors run
once plain (timed) and once under the block log (timed, parsed as a stream), and the cycles printed for
zero-wait memory, 5 flash wait states, and 5 wait states behind an ART-style accelerator.

    python3 benchmarks/cycle_model.py OUT_DIR [OUT_DIR ...] [--targets cortex-m4 cortex-m7 cortex-m0]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

from tinyq.errors import TinyqError
from tinyq.targets import cortex_m, cycles


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("out", nargs="+", type=Path, help="folders written by `tinyq demo` or `tinyq convert`")
    parser.add_argument("--targets", nargs="+", default=list(cycles.TIMINGS), choices=list(cycles.TIMINGS))
    args = parser.parse_args()
    memories = (("0 ws", cycles.ZERO_WAIT), ("5 ws", cycles.Memory(5)), ("5 ws + ART", cycles.Memory(5, True)))
    head = ["model", "core", "MACs", "inferences", "instructions", *(f"cycles {m}" for m, _ in memories),
            "cycles/MAC (0 ws)", "CPI (0 ws)", "plain run s", "logged run s", "log MB"]
    print("| " + " | ".join(head) + " |")
    print("|" + "---|" * len(head))
    with tempfile.TemporaryDirectory(prefix="tinyq_cycles_bench_") as tmp:
        for out in args.out:
            macs = json.loads((out / "report.json").read_text())["model"]["macs"]
            for target in args.targets:
                try:
                    elf = cortex_m.build_cortex_m(out / "firmware", Path(tmp) / out.name / target, target=target)
                except TinyqError as exc:
                    print(f"| {out.name} | {target} | {macs:,} | not built: {exc} |" + " |" * (len(head) - 4))
                    continue
                start = time.perf_counter()
                cortex_m.run_qemu_golden(elf, target=target)
                plain = time.perf_counter() - start
                trace = cycles.trace_function(elf, target=target)
                counts = [cycles.count(trace, cycles.timing_for(target), m) for _, m in memories]
                c = counts[0]
                print(f"| {out.name} | {target} | {macs:,} | {c.calls} | {c.instructions_per_call:,.0f} | "
                      + " | ".join(f"{k.cycles_per_call:,.0f}" for k in counts)
                      + f" | {c.cycles_per_call / macs:.2f} | {c.cycles_per_instruction:.3f} | {plain:.2f} | "
                        f"{trace.seconds:.2f} | {trace.log_bytes / 1e6:.0f} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
