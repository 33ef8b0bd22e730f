"""The emitted firmware folder compiles on its own: CMake on the host and for a Cortex-M4 (run in QEMU), the Make
fragment, the Arduino library layout and the Zephyr module, each from a copy outside the checkout."""

import json
import os
import re
import shutil
import subprocess

import pytest

from tinyq import emit
from tinyq.targets import cortex_m

STRICT = "-Wall -Wextra -Werror"


def _run(cmd, **kw):
    proc = subprocess.run(cmd, capture_output=True, text=True, **kw)
    assert proc.returncode == 0, f"{cmd} failed ({proc.returncode}):\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}"
    return proc


@pytest.fixture(scope="module")
def folder(mlp_q, mlp_verify, tmp_path_factory):
    """The MLP's firmware folder, emitted once, with the C engine."""
    out = tmp_path_factory.mktemp("fwfolder") / "firmware"
    emit.emit(mlp_q, mlp_verify, out, name="digits")
    return out


@pytest.fixture
def copy(folder, tmp_path):
    """A copy of the folder in an empty directory, as a firmware engineer would drop it into a project."""
    dst = tmp_path / "project" / "digits"
    shutil.copytree(folder, dst)
    return dst


def test_folder_lists_everything_in_its_manifest(folder):
    manifest = json.loads((folder / "manifest.json").read_text())
    listed = {f["name"] for f in manifest["files"]}
    present = {str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file()} - {"manifest.json"}
    assert listed == present
    for name in ("CMakeLists.txt", "digits.mk", "README.md", "tinyq_kernels.c", "tinyq_kernels.h",
                 "example/main.c", "cmake/arm-none-eabi.cmake", "library.properties", "zephyr/module.yml"):
        assert name in listed


def test_runtime_copies_say_where_they_come_from(folder, mlp_q):
    from tinyq import __version__

    for name in ("tinyq_kernels.c", "tinyq_kernels.h", "example/main.c"):
        head = (folder / name).read_text()[:300]
        assert f"tinyq {__version__}" in head and "copied" in head and mlp_q.sha256 in head


def test_readme_gives_the_numbers(folder, mlp_verify):
    text = (folder / "README.md").read_text()
    assert f"{mlp_verify.tflm_arena_bytes} B" in text
    assert "add_subdirectory" in text and "digits.mk" in text and "library.properties" in text
    assert re.search(r"C engine arena .*\| \d+ B", text)
    assert "digits_invoke(input, output)" in text


@pytest.mark.integration
def test_cmake_host_build_runs_golden_vectors(copy):
    env = dict(os.environ, CFLAGS=STRICT)
    _run(["cmake", "-S", str(copy), "-B", str(copy / "build")], env=env)
    _run(["cmake", "--build", str(copy / "build")], env=env)
    proc = _run([str(copy / "build" / "digits_example")])
    assert "10/10 golden vectors bit-exact" in proc.stdout


@pytest.mark.integration
def test_cmake_add_subdirectory_links_the_library(copy):
    app = copy.parent
    (app / "CMakeLists.txt").write_text(
        "cmake_minimum_required(VERSION 3.13)\nproject(app C)\nadd_subdirectory(digits)\n"
        "add_executable(app app.c)\ntarget_link_libraries(app PRIVATE digits digits_golden)\n")
    (app / "app.c").write_text(
        '#include <string.h>\n#include "digits_model.h"\n#include "digits_golden.h"\n'
        "int main(void) {\n  int8_t out[DIGITS_OUTPUT_BYTES];\n  int i, bad = 0;\n  digits_init();\n"
        "  for (i = 0; i < DIGITS_GOLDEN_COUNT; i++) {\n    digits_invoke(g_digits_golden_inputs[i], out);\n"
        "    bad += memcmp(out, g_digits_golden_outputs[i], sizeof out) != 0;\n  }\n  return bad;\n}\n")
    env = dict(os.environ, CFLAGS=STRICT)
    _run(["cmake", "-S", str(app), "-B", str(app / "build")], env=env)
    _run(["cmake", "--build", str(app / "build")], env=env)
    assert not (app / "build" / "digits" / "digits_example").exists()  # the example is off under add_subdirectory
    _run([str(app / "build" / "app")])


@pytest.mark.integration
@pytest.mark.qemu
def test_cmake_cortex_m4_build_runs_in_qemu(copy):
    cortex_m.check_toolchain()
    env = dict(os.environ, CFLAGS=STRICT)
    build = copy / "build-m4"
    _run(["cmake", "-S", str(copy), "-B", str(build), f"-DCMAKE_TOOLCHAIN_FILE={copy / 'cmake/arm-none-eabi.cmake'}"],
         env=env)
    _run(["cmake", "--build", str(build)], env=env)
    elf = build / "digits_example.elf"
    proc = subprocess.run(["qemu-system-arm", "-machine", "mps2-an386", "-nographic", "-semihosting-config",
                           "enable=on,target=native", "-icount", "shift=0", "-kernel", str(elf)],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-1000:]
    assert "10/10 golden vectors bit-exact" in proc.stdout


@pytest.mark.integration
def test_make_fragment(copy):
    app = copy.parent
    (app / "main.c").write_text(
        '#include <string.h>\n#include "digits_model.h"\n#include "digits_golden.h"\n'
        "int main(void) {\n  int8_t out[DIGITS_OUTPUT_BYTES];\n  digits_init();\n"
        "  digits_invoke(g_digits_golden_inputs[0], out);\n"
        "  return memcmp(out, g_digits_golden_outputs[0], sizeof out) != 0;\n}\n")
    (app / "Makefile").write_text(
        "include digits/digits.mk\n"
        "app: main.c $(DIGITS_SRCS) $(DIGITS_GOLDEN_SRCS)\n"
        f"\t$(CC) $(DIGITS_CFLAGS) {STRICT} $^ -o $@\n")
    _run(["make", "-C", str(app)])
    _run([str(app / "app")])


@pytest.mark.integration
def test_arduino_library_compiles_like_the_ide(copy, tmp_path):
    """Flat library layout: every C file at the top is compiled with the library folder on the include path;
    the example sketch becomes C++ after `#include <Arduino.h>`, as the IDE does (Arduino.h is a stand-in)."""
    cortex_m.check_toolchain()
    props = dict(line.split("=", 1) for line in (copy / "library.properties").read_text().splitlines()
                 if "=" in line and not line.startswith("#"))
    for key in ("name", "version", "author", "maintainer", "sentence", "paragraph", "category", "url",
                "architectures"):
        assert props.get(key), key
    assert not (copy / "src").exists()
    arch = ["-mcpu=cortex-m4", "-mthumb", "-Os", "-ffunction-sections", "-fdata-sections"]
    objs = []
    for src in sorted(copy.glob("*.c")):
        obj = tmp_path / (src.stem + ".o")
        _run(["arm-none-eabi-gcc", "-std=gnu11", *arch, *STRICT.split(), f"-I{copy}", "-c", str(src), "-o", str(obj)])
        objs.append(obj)
    stand_in = tmp_path / "core"
    stand_in.mkdir()
    (stand_in / "Arduino.h").write_text(
        "#include <stdint.h>\nstruct SerialStandIn {\n  void begin(long) {}\n  void print(const char *) {}\n"
        "  void print(int) {}\n  void println(const char *) {}\n};\nextern SerialStandIn Serial;\n")
    sketch = copy / "examples" / "digits_golden" / "digits_golden.ino"
    cpp = tmp_path / "digits_golden.ino.cpp"
    cpp.write_text("#include <Arduino.h>\n" + sketch.read_text())
    _run(["arm-none-eabi-g++", "-std=gnu++17", *arch, "-fno-exceptions", "-fno-rtti", *STRICT.split(),
          f"-I{stand_in}", f"-I{copy}", "-c", str(cpp), "-o", str(tmp_path / "sketch.o")])


@pytest.mark.integration
def test_zephyr_module_builds_with_zephyr_cmake_functions(copy, tmp_path):
    """Zephyr is not installable here: its three CMake functions the module uses are defined as plain CMake, and
    the module's CMakeLists is built for a Cortex-M4 exactly as Zephyr would include it."""
    cortex_m.check_toolchain()
    module = (copy / "zephyr" / "module.yml").read_text()
    assert re.search(r"^name: digits$", module, re.M) and re.search(r"^\s+cmake: zephyr$", module, re.M)
    assert (copy / "zephyr" / "Kconfig").read_text().count("config DIGITS") == 1
    proj = tmp_path / "zephyr_app"
    proj.mkdir()
    (proj / "CMakeLists.txt").write_text(
        "cmake_minimum_required(VERSION 3.13)\nproject(zephyr_app C)\nset(CONFIG_DIGITS y)\n"
        "macro(zephyr_library_named name)\n  set(ZEPHYR_CURRENT_LIBRARY ${name})\n  add_library(${name} STATIC)\n"
        "endmacro()\nfunction(zephyr_include_directories)\n  target_include_directories(${ZEPHYR_CURRENT_LIBRARY} "
        "PUBLIC ${ARGN})\nendfunction()\nfunction(zephyr_library_sources)\n  target_sources("
        "${ZEPHYR_CURRENT_LIBRARY} PRIVATE ${ARGN})\nendfunction()\n"
        f"add_subdirectory({copy / 'zephyr'} module)\n")
    env = dict(os.environ, CFLAGS=STRICT + " -std=c99")
    _run(["cmake", "-S", str(proj), "-B", str(proj / "build"),
          f"-DCMAKE_TOOLCHAIN_FILE={copy / 'cmake/arm-none-eabi.cmake'}"], env=env)
    _run(["cmake", "--build", str(proj / "build")], env=env)
    assert list((proj / "build").rglob("libdigits.a"))
