"""A wheel built from the sources works from anywhere: templates and firmware sources ship inside it, and a
conversion run from a fresh virtual environment outside the checkout builds firmware that passes its golden
vectors."""

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from tinyq import resources

REPO = Path(__file__).resolve().parent.parent


def _run(cmd, **kw):
    proc = subprocess.run(cmd, capture_output=True, text=True, **kw)
    assert proc.returncode == 0, f"{cmd} failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return proc


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    """The wheel, built from a copy of the sources (no build artefacts, no .git)."""
    root = tmp_path_factory.mktemp("wheel")
    src = root / "src"
    shutil.copytree(REPO, src, ignore=shutil.ignore_patterns(".git", "build", "dist", "*.egg-info", "__pycache__",
                                                             "out", ".pytest_cache"))
    _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(root / "dist"),
          str(src)])
    wheels = list((root / "dist").glob("tinyq-*.whl"))
    assert len(wheels) == 1
    return wheels[0]


def test_wheel_holds_templates_and_firmware_sources(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    for path in ("tinyq/templates/model.c.j2", "tinyq/templates/CMakeLists.txt.j2",
                 "tinyq/firmware_stub/Makefile", "tinyq/firmware_stub/main.c",
                 "tinyq/firmware_stub/runtime/tq_common.h", "tinyq/firmware_stub/runtime/conv/tq_conv.c",
                 "tinyq/firmware_stub/runtime/conv/tq_conv.h",
                 "tinyq/firmware_stub/targets/cortex-m.mk", "tinyq/targets/registry.py",
                 "tinyq/firmware_stub/backends/c.mk",
                 "tinyq/firmware_stub/board/cortex_m/cortex_m.ld", "tinyq/firmware_stub/board/host/board_host.c"):
        assert path in names, path
    runtime = resources.runtime_dir()  # every op family's folder, however many there are
    for source in runtime.rglob("*.[ch]"):
        assert f"tinyq/firmware_stub/runtime/{source.relative_to(runtime).as_posix()}" in names, source
    assert not [n for n in names if n.endswith((".o", ".elf"))]


@pytest.mark.integration
@pytest.mark.slow
def test_wheel_in_a_fresh_venv_converts_and_builds(wheel, tmp_path, model_cache):
    """--system-site-packages lends the venv TensorFlow and friends; tinyq itself must come from the wheel."""
    venv = tmp_path / "venv"
    _run([sys.executable, "-m", "venv", "--system-site-packages", str(venv)])
    py = venv / "bin" / "python"
    _run([str(py), "-m", "pip", "install", "-q", "--no-deps", "--no-index", str(wheel)])
    work = tmp_path / "elsewhere"
    work.mkdir()
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    where = _run([str(py), "-c", "import tinyq, tinyq.resources as r; print(tinyq.__file__); "
                  "print(r.templates_dir()); print(r.firmware_stub_dir())"], cwd=work, env=env).stdout.split()
    assert all(str(venv) in p for p in where), where
    proc = _run([str(venv / "bin" / "tinyq"), "--quiet", "demo", "--model", "mnist_mlp", "--out", "out",
                 "--no-analysis", "--no-cortex-m"], cwd=work, env=env)
    assert "C engine vs TFLM bit-exact       100.00 %" in proc.stdout
    fw = work / "out" / "firmware"
    assert (fw / "CMakeLists.txt").is_file() and (fw / "tq_conv.c").is_file() and (fw / "tinyq_kernels.h").is_file()
    build = tmp_path / "build"
    _run(["cmake", "-S", str(fw), "-B", str(build)], env=dict(env, CFLAGS="-Wall -Wextra -Werror"))
    _run(["cmake", "--build", str(build)])
    assert "10/10 golden vectors bit-exact" in _run([str(build / "mnist_example")]).stdout
