"""Mutation fuzzing of tinyq's .tflite verifier, reader, report listings and C engine generator, with accepted
mutants' generated C built and run under ASan+UBSan.

    python benchmarks/fuzz_tflite.py [--cases 20000] [--seed 14] [--sanitize 50] [--demo] [--tflite x.tflite ...]

Seeds are every op family's synthetic int8 model of tests/tflite_build.py (no TensorFlow), plus with --demo the
int8 demo models (trained once into the model cache) and any --tflite files; the cases are spread evenly over the
seeds, each seed's stream reproducible from (--seed, its name). Seed 14 is the one tests/test_fuzz.py uses in CI.
Prints the table by stage (cases, accepted, rejected by the verifier, the reader, the listings, lowering/engine,
untyped exceptions, hangs), the outcome classes, per-mutation counts and example messages; --sanitize N builds the
first N distinct accepted engines (round-robin over the seeds) under ASan+UBSan and runs each on 8 int8 inputs.
Exits 1 if any case ended in an untyped exception or a hang, or any sanitized run was not clean; --save DIR keeps
those mutants' bytes.
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

from tinyq.engine import read_graph  # noqa: E402
from tinyq.errors import UnsupportedOpError  # noqa: E402
from tinyq.tflm import resolver_methods  # noqa: E402


def demo_seeds() -> dict[str, bytes]:
    """The int8 .tflite of each demo model, quantized the way the test fixtures do it (needs TensorFlow)."""
    from tinyq import data, models, quantize

    ds = data.load_mnist()
    seeds = {}
    for name in models.BUILDERS:
        model = models.demo_model(name, ds)
        x = data.preprocess(ds.train_x, models.input_shape(model))
        seeds[name] = quantize.quantize(model, x, quantize.QuantizeConfig(), labels=ds.train_y).tflite
    return seeds


def _emittable(o: fz.Outcome) -> bool:
    """A firmware folder needs TFLM's resolver for every op: TILE, which pip TFLM has no kernel for, cannot be
    emitted (the C engine runs it; tests/test_ops_layout.py checks it under ASan+UBSan on its own)."""
    try:
        resolver_methods(read_graph(o.mutant.data))
    except UnsupportedOpError:
        return False
    return True


def pick_for_sanitizer(outcomes: list[fz.Outcome], n: int) -> list[fz.Outcome]:
    """Up to n accepted mutants with distinct generated engines, taken round-robin over the seed models."""
    by_seed: dict[str, list[fz.Outcome]] = {}
    for o in outcomes:
        if o.klass == "accepted" and _emittable(o):
            by_seed.setdefault(o.mutant.seed, []).append(o)
    chosen: dict[str, fz.Outcome] = {}
    queues = [list(reversed(q)) for q in by_seed.values()]
    while len(chosen) < n and any(queues):
        for q in queues:
            while q:
                o = q.pop()
                key = fz.engine_key(o.files)
                if key not in chosen:
                    chosen[key] = o
                    break
            if len(chosen) >= n:
                break
    return list(chosen.values())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=20000, help="mutants in all, spread over the seed models")
    parser.add_argument("--seed", type=int, default=14, help="random seed of the mutation engine (CI uses 14)")
    parser.add_argument("--demo", action="store_true", help="add the trained demo models as seeds (TensorFlow)")
    parser.add_argument("--tflite", nargs="*", default=[], help="more seed .tflite files")
    parser.add_argument("--only", nargs="*", default=[], help="use only these synthetic seed models")
    parser.add_argument("--time-limit", type=float, default=10.0, help="seconds per case before it counts as a hang")
    parser.add_argument("--sanitize", type=int, default=0, metavar="N",
                        help="build N accepted mutants' engines under ASan+UBSan and run them")
    parser.add_argument("--show", type=int, default=3, help="example messages shown per outcome class")
    parser.add_argument("--save", type=Path, help="folder to write the bytes of bad mutants to")
    args = parser.parse_args()

    seeds = fz.seed_models()
    if args.only:
        seeds = {k: v for k, v in seeds.items() if k in args.only}
    if args.demo:
        seeds.update(demo_seeds())
    seeds.update({Path(p).stem: Path(p).read_bytes() for p in args.tflite})
    start = time.perf_counter()
    outcomes = [fz.run_case(m, args.time_limit) for m in fz.spread(seeds, args.cases, args.seed)]
    fuzz_seconds = time.perf_counter() - start
    print(f"{len(outcomes)} mutants of {len(seeds)} seed models (seed {args.seed}) in {fuzz_seconds:.1f} s, "
          f"slowest case {max(o.seconds for o in outcomes):.2f} s\n")
    print(fz.stage_table(outcomes))
    print()
    print(fz.table(fz.summary(outcomes), len(outcomes)))
    by_kind: dict[str, dict[str, int]] = {}
    for o in outcomes:
        row = by_kind.setdefault(o.mutant.kind.split("+")[0], {})
        row[o.klass] = row.get(o.klass, 0) + 1
    print("\nfirst mutation of the case -> accepted / rejected by verifier / by reader / later / untyped+hang")
    for kind, row in sorted(by_kind.items()):
        bad = sum(n for k, n in row.items() if k.startswith(("untyped", "hang")))
        ver = sum(n for k, n in row.items() if k.startswith("rejected by verifier"))
        rea = sum(n for k, n in row.items() if k.startswith("rejected by reader"))
        later = sum(row.values()) - row.get("accepted", 0) - bad - ver - rea
        print(f"  {kind:16} {row.get('accepted', 0):5} / {ver:5} / {rea:5} / {later:5} / {bad}")
    print("\nexamples")
    for klass, _ in fz.summary(outcomes):
        if klass == "accepted":
            continue
        for o in [o for o in outcomes if o.klass == klass][:args.show]:
            print(f"  [{klass}] {o.mutant.seed} #{o.mutant.case} {o.mutant.kind} ({o.mutant.detail[:80]}): "
                  f"{o.message[:200]}")

    bad = [o for o in outcomes if o.bad]
    dirty = []
    if args.sanitize:
        chosen = pick_for_sanitizer(outcomes, args.sanitize)
        start = time.perf_counter()
        with tempfile.TemporaryDirectory(prefix="tinyq_fuzz_") as work:
            runs = [fz.sanitized_run(o, Path(work)) for o in chosen]
        dirty = [r for r in runs if not r.clean]
        accepted = sum(o.klass == "accepted" for o in outcomes)
        print(f"\nASan+UBSan: {len(runs)} of {accepted} accepted mutants (distinct generated engines, from "
              f"{len({r.outcome.mutant.seed for r in runs})} seed models), each built with SANITIZE=1 and run on 8 "
              f"int8 inputs (two saturated): {len(runs) - len(dirty)} clean, {len(dirty)} not clean "
              f"({time.perf_counter() - start:.0f} s)")
        for r in dirty[:10]:
            print(f"  {r.outcome.mutant.seed} #{r.outcome.mutant.case} {r.outcome.mutant.detail}: {r.detail}")
    if args.save and (bad or dirty):
        args.save.mkdir(parents=True, exist_ok=True)
        for o in bad + [r.outcome for r in dirty]:
            (args.save / f"{o.mutant.seed}_{args.seed}_{o.mutant.case}.tflite").write_bytes(o.mutant.data)
    for o in bad[:20]:
        print(f"BAD {o.klass} {o.mutant.seed} #{o.mutant.case} {o.mutant.kind} ({o.mutant.detail[:100]}): "
              f"{o.message[:300]}")
    return 1 if bad or dirty else 0


if __name__ == "__main__":
    sys.exit(main())
