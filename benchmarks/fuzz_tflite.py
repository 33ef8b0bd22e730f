"""Mutation fuzzing of tinyq's .tflite reader, report listings and C engine generator, with every accepted
mutant's generated C built and run under ASan+UBSan.

    python benchmarks/fuzz_tflite.py [--cases 2000] [--seed 14] [--no-sanitize] [--tflite extra.tflite ...]

Seeds are the int8 demo models (trained once into the model cache). Prints the outcome table by class
(accepted, rejected by reader/engine and error class, untyped exception, hang) and the sanitizer figures; exits 1
if any case ended in an untyped exception or a hang, or any sanitized run was not clean.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
REPO = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO), str(REPO / "tests")]  # this checkout's tinyq, and the fuzzer shared with the tests

import tflite_fuzz as fz  # noqa: E402

from tinyq import data, models, quantize  # noqa: E402


def demo_seeds(names: list[str]) -> dict[str, bytes]:
    """The int8 .tflite of each demo model, quantized the way the test fixtures do it."""
    ds = data.load_mnist()
    seeds = {}
    for name in names:
        model = models.demo_model(name, ds)
        x = data.preprocess(ds.train_x, models.input_shape(model))
        seeds[name] = quantize.quantize(model, x, quantize.QuantizeConfig(), labels=ds.train_y).tflite
    return seeds


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=2000, help="mutants per seed model")
    parser.add_argument("--seed", type=int, default=14, help="random seed of the mutation engine")
    parser.add_argument("--models", nargs="*", default=list(models.BUILDERS), help="demo models used as seeds")
    parser.add_argument("--tflite", nargs="*", default=[], help="more seed .tflite files")
    parser.add_argument("--time-limit", type=float, default=10.0, help="seconds per case before it counts as a hang")
    parser.add_argument("--no-sanitize", action="store_true", help="skip building accepted mutants under ASan+UBSan")
    parser.add_argument("--show", type=int, default=3, help="example messages shown per outcome class")
    args = parser.parse_args()

    seeds = demo_seeds(args.models)
    seeds.update({Path(p).stem: Path(p).read_bytes() for p in args.tflite})
    start = time.perf_counter()
    outcomes = []
    for name, seed in seeds.items():
        outcomes += [fz.run_case(m, args.time_limit) for m in fz.mutants(seed, name, args.cases, args.seed)]
    fuzz_seconds = time.perf_counter() - start
    print(f"{len(outcomes)} mutants of {', '.join(seeds)} (seed {args.seed}) in {fuzz_seconds:.1f} s, "
          f"slowest case {max(o.seconds for o in outcomes):.2f} s\n")
    print(fz.table(fz.summary(outcomes), len(outcomes)))
    by_kind: dict[str, dict[str, int]] = {}
    for o in outcomes:
        row = by_kind.setdefault(o.mutant.kind.split("+")[0], {})
        row[o.klass] = row.get(o.klass, 0) + 1
    print("\nfirst mutation of the case -> accepted / rejected / untyped+hang")
    for kind, row in sorted(by_kind.items()):
        bad = sum(n for k, n in row.items() if k.startswith(("untyped", "hang")))
        print(f"  {kind:16} {row.get('accepted', 0):5} / {sum(row.values()) - row.get('accepted', 0) - bad:5} / "
              f"{bad}")
    print("\nexamples")
    for klass, _ in fz.summary(outcomes):
        if klass == "accepted":
            continue
        for o in [o for o in outcomes if o.klass == klass][:args.show]:
            print(f"  [{klass}] {o.mutant.seed} #{o.mutant.case} {o.mutant.kind}: {o.message[:200]}")

    dirty = []
    if not args.no_sanitize:
        accepted = [o for o in outcomes if o.klass == "accepted"]
        engines: dict[str, fz.Outcome] = {}
        for o in accepted:
            engines.setdefault(fz.engine_key(o.files), o)
        start = time.perf_counter()
        with tempfile.TemporaryDirectory(prefix="tinyq_fuzz_") as work:
            runs = [fz.sanitized_run(o, Path(work)) for o in engines.values()]
        dirty = [r for r in runs if not r.clean]
        print(f"\nASan+UBSan: {len(accepted)} accepted mutants, {len(engines)} distinct generated engines, each "
              f"built with SANITIZE=1 and run on 8 int8 inputs (two saturated): {len(runs) - len(dirty)} clean, "
              f"{len(dirty)} not clean ({time.perf_counter() - start:.0f} s)")
        for r in dirty[:10]:
            print(f"  {r.outcome.mutant.seed} #{r.outcome.mutant.case} {r.outcome.mutant.detail}: {r.detail}")
    bad = [o for o in outcomes if o.bad]
    return 1 if bad or dirty else 0


if __name__ == "__main__":
    sys.exit(main())
