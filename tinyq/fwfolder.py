"""The self-contained firmware folder: runtime and example sources copied in, build files for CMake, Make,
Arduino and Zephyr, and a README, so the folder compiles on its own wherever a firmware engineer drops it."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from .engine.cengine import ROUNDING_HEADER
from .errors import EmitError
from .render import Banner, GeneratedFile, environment, render
from .resources import firmware_stub_dir, runtime_dir

# Example program (the stub that runs the golden vectors): folder in the emitted tree -> stub files it copies.
EXAMPLE_SOURCES = {
    "example": ("main.c", "backend.h", "backend_c.c", "board.h"),
    "example/host": ("board/host/board_host.c",),
    "example/cortex-m4": ("board/cortex_m/startup.c", "board/cortex_m/board.c", "board/cortex_m/measure.c",
                          "board/cortex_m/board_cortex_m.h", "board/cortex_m/cortex_m.ld"),
}


@dataclass(frozen=True)
class FolderFigures:
    """The numbers the folder's README gives a firmware engineer."""

    tflite_bytes: int
    tflm_arena_bytes: int
    c_arena_bytes: int | None
    c_const_bytes: int | None
    input_shape: str
    input_scale: str
    input_zero_point: int
    output_shape: str
    output_scale: str
    output_zero_point: int
    macs: int


def _copied(env, source: Path, out_name: str, banner: Banner) -> GeneratedFile:
    """A hand-written tinyq source copied into the folder, under a banner naming its origin and version."""
    return render(env, "copied_source.j2", out_name, banner, origin=source.name, text=source.read_text())


def runtime_sources() -> list[Path]:
    """Every C source and header of the C engine's runtime: the shared headers at its top level and each op
    family's files under runtime/<family>/, sorted by path. Raises if two share a name, since the emitted folder
    holds them flat."""
    root = runtime_dir()
    paths = sorted(p for p in root.rglob("*") if p.suffix in (".c", ".h") and p.is_file())
    seen: dict[str, Path] = {}
    for path in paths:
        if path.name in seen:
            raise EmitError(f"runtime sources {seen[path.name].relative_to(root)} and {path.relative_to(root)} share "
                            f"the name {path.name}, but the firmware folder holds them flat: rename one")
        seen[path.name] = path
    return paths


def family_headers() -> list[str]:
    """The op families' headers (runtime/<family>/*.h), by file name, sorted: what tinyq_kernels.h includes."""
    root = runtime_dir()
    return sorted(p.name for p in runtime_sources() if p.suffix == ".h" and p.parent != root)


def runtime_files(env, banner: Banner) -> list[GeneratedFile]:
    """Every C engine runtime source and header, flat in the folder (the Arduino library layout wants that), and
    tinyq_kernels.h, the one header that includes every family's. Not tq_rounding.h: the engine renders the
    model's own (engine/cengine.py)."""
    root = runtime_dir()
    copied = [render(env, "copied_source.j2", p.name, banner, origin=f"runtime/{p.relative_to(root).as_posix()}",
                     text=p.read_text()) for p in runtime_sources() if p.name != ROUNDING_HEADER]
    umbrella = render(env, "tinyq_kernels.h.j2", "tinyq_kernels.h", banner, family_headers=family_headers())
    return copied + [umbrella]


def example_files(env, banner: Banner) -> list[GeneratedFile]:
    """The stub that runs the golden vectors, with its host and Cortex-M4 (QEMU mps2-an386) board files."""
    stub = firmware_stub_dir()
    return [_copied(env, stub / rel, f"{folder}/{Path(rel).name}", banner)
            for folder, rels in EXAMPLE_SOURCES.items() for rel in rels]


def build_files(env, banner: Banner, ident: str, files: list[GeneratedFile], has_engine: bool,
                figures: FolderFigures) -> list[GeneratedFile]:
    """CMakeLists.txt, <ident>.mk, the CMake toolchain file, Arduino and Zephyr metadata, and the README."""
    flat = [f.name for f in files if "/" not in f.name]
    engine_sources = sorted(n for n in flat if n.endswith(".c") and not n.endswith(("_golden.c", "_model_data.c")))
    if not has_engine:
        engine_sources = []
    values = dict(
        ident=ident, macro=ident.upper(), has_engine=has_engine, engine_sources=engine_sources,
        golden_source=f"{ident}_golden.c", model_data_source=f"{ident}_model_data.c",
        example_sources=[f"{folder}/{Path(rel).name}" for folder, rels in EXAMPLE_SOURCES.items()
                         for rel in rels if rel.endswith(".c") and folder != "example/cortex-m4"
                         and folder != "example/host"],
        host_board_sources=[f"example/host/{Path(rel).name}" for rel in EXAMPLE_SOURCES["example/host"]],
        cm4_board_sources=[f"example/cortex-m4/{Path(rel).name}" for rel in EXAMPLE_SOURCES["example/cortex-m4"]
                           if rel.endswith(".c")],
        fig=figures,
    )
    return [
        render(env, "CMakeLists.txt.j2", "CMakeLists.txt", banner, **values),
        render(env, "firmware.mk.j2", f"{ident}.mk", banner, **values),
        render(env, "arm-none-eabi.cmake.j2", "cmake/arm-none-eabi.cmake", banner, **values),
        render(env, "library.properties.j2", "library.properties", banner, **values),
        render(env, "golden.ino.j2", f"examples/{ident}_golden/{ident}_golden.ino", banner, **values),
        render(env, "zephyr_module.yml.j2", "zephyr/module.yml", banner, **values),
        render(env, "zephyr_CMakeLists.txt.j2", "zephyr/CMakeLists.txt", banner, **values),
        render(env, "zephyr_Kconfig.j2", "zephyr/Kconfig", banner, **values),
        render(env, "firmware_README.md.j2", "README.md", banner, **values),
    ]


def folder_files(banner: Banner, ident: str, generated: list[GeneratedFile], has_engine: bool,
                 figures: FolderFigures) -> list[GeneratedFile]:
    """What a firmware folder holds besides the model's own generated files."""
    env = environment()
    extra = runtime_files(env, banner) if has_engine else []
    extra += example_files(env, banner) if has_engine else []
    return extra + build_files(env, banner, ident, generated + extra, has_engine, figures)
