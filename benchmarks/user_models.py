"""Issue 10 acceptance: the four benchmark stand-ins (tests/standins.py) through `tinyq convert`, one CLI run per
model file, with ops, float vs int8 metric, C engine vs TFLM bit-exact count, arena, flash, Cortex-M4
instructions per inference and wall time.

    python benchmarks/user_models.py WORKDIR [--formats h5 tflite keras] [--only resnet8 ...] [--cortex-m-images N]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))


def _run(model: Path, data: Path, extra: list[str], out: Path, cortex_m: int) -> tuple[int, float, str]:
    cmd = [sys.executable, "-m", "tinyq.cli", "convert", str(model), "--data", str(data), *extra, "--out", str(out),
           "--force", "--no-analysis"] + (["--cortex-m-images", str(cortex_m)] if cortex_m else ["--no-cortex-m"])
    start = time.monotonic()
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT,
                          env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"))
    lines = [ln for ln in proc.stderr.splitlines() if ln.startswith("tinyq:")] or proc.stderr.splitlines()[-3:]
    return proc.returncode, time.monotonic() - start, " / ".join(lines)


def _row(name: str, fmt: str, out: Path, rc: int, seconds: float, err: str) -> dict:
    if rc != 0:
        return {"model": name, "format": fmt, "exit": rc, "wall_s": round(seconds, 1), "error": err[-300:]}
    r = json.loads((out / "report.json").read_text())
    m, agr = r["metric"], r["agreement"]
    row = {"model": name, "format": fmt, "exit": 0, "wall_s": round(seconds, 1), "ops": r["ops"],
           "task": r["task"], "metric": m["name"], "keras_float": m["keras_float"], "tflm_int8": m["tflm_int8"],
           "c_int8": m.get("c_int8"), "test_samples": r["test_images"],
           "c_vs_tflm_bitexact": None, "tflm_arena": r["arena_bytes"]["tflm"],
           "c_arena": r["arena_bytes"].get("c"), "c_engine": r["c_engine"]["status"],
           "blocked_by": r["c_engine"]["blocked_by"], "params": r["model"]["params"], "macs": r["model"]["macs"]}
    if "c_vs_tflm_bitexact" in agr:
        row["c_vs_tflm_bitexact"] = f"{round(agr['c_vs_tflm_bitexact'] * agr['c_vs_tflm_images'])}/" \
                                    f"{agr['c_vs_tflm_images']}"
    if "output_error" in r:
        row["sqnr_db"] = r["output_error"]["tflm_int8_vs_keras_float_sqnr_db"]
    if "cortex_m4" in r:
        c = r["cortex_m4"]
        row.update(m4_flash=c["flash_bytes"], m4_ram=c["ram_bytes"], m4_instr=c["instructions_per_inference"],
                   m4_bitexact=f"{c['bitexact_images']}/{c['images']}")
    return row


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("workdir")
    parser.add_argument("--formats", nargs="+", default=["h5", "tflite"], choices=["keras", "h5", "tflite"])
    parser.add_argument("--only", nargs="+", choices=["resnet8", "mobilenet", "ds_cnn", "autoencoder"])
    parser.add_argument("--cortex-m-images", type=int, default=100, help="0: no Cortex-M4 run")
    parser.add_argument("--tiny", action="store_true", help="tiny variants (quick)")
    args = parser.parse_args()
    work = Path(args.workdir)
    manifest = work / "standins.json"
    if not manifest.is_file():
        import standins

        made = standins.make_all(work, full=not args.tiny)
        manifest.write_text(json.dumps({k: {"models": {f: str(p) for f, p in v[0].items()}, "data": str(v[1]),
                                            "args": v[2]} for k, v in made.items()}, indent=2))
    made = json.loads(manifest.read_text())
    rows = []
    for name, entry in made.items():
        if args.only and name not in args.only:
            continue
        for fmt in args.formats:
            out = work / "out" / f"{name}-{fmt}"
            rc, seconds, err = _run(Path(entry["models"][fmt]), Path(entry["data"]), entry["args"], out,
                                    args.cortex_m_images)
            rows.append(_row(name, fmt, out, rc, seconds, err))
            print(json.dumps(rows[-1]), flush=True)
    (work / "results.json").write_text(json.dumps(rows, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
