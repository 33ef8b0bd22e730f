"""The C runtime's layout (firmware_stub/README.md, "runtime/"): one folder per op family with its tq_<family>.h
and tq_<family>.c, shared headers at the top, and each build's path chosen by whole function definitions, never by
an #if inside a function body or one that a brace crosses. Fast: reads the sources, compiles nothing."""

import re

from tinyq import resources

RUNTIME = resources.runtime_dir()
SHARED = {"tq_common.h", "tq_path.h", "tq_simd.h", "tq_requant.h", "tq_requant.c", "tq_rounding.h", "tinyq_trace.h"}


def _code_lines(path):
    """The file's lines with comments, strings and character literals blanked (line numbers kept)."""
    src = path.read_text()
    src = re.sub(r"/\*.*?\*/", lambda m: "\n" * m.group(0).count("\n"), src, flags=re.S)
    src = re.sub(r"//[^\n]*", "", src)
    src = re.sub(r'"(\\.|[^"\\])*"', '""', src)
    src = re.sub(r"'(\\.|[^'\\])*'", "''", src)
    return src.split("\n")


def _conditional_problems(path):
    """Every #if/#elif/#else/#endif of a feature (not an include guard or __cplusplus) that sits inside braces or
    that a brace crosses; macro bodies and the C++ linkage blocks are skipped."""
    problems, stack, depth, in_macro, cplusplus = [], [], 0, False, 0
    for n, line in enumerate(_code_lines(path), 1):
        if in_macro:
            in_macro = line.rstrip().endswith("\\")
            continue
        m = re.match(r"\s*#\s*(if|ifdef|ifndef|elif|else|endif|define)\b(.*)", line)
        if m and m.group(1) == "define":
            in_macro = line.rstrip().endswith("\\")
        elif m and m.group(1) in ("if", "ifdef", "ifndef"):
            cond = m.group(2).strip()
            exempt = (m.group(1) == "ifndef" and cond.endswith("_H_")) or "__cplusplus" in cond
            cplusplus += "__cplusplus" in cond
            stack.append((depth, exempt, "__cplusplus" in cond))
            if depth and not exempt:
                problems.append(f"{path.name}:{n}: #{m.group(1)} inside a function body")
        elif m:
            start, exempt, cpp = stack[-1]
            if depth != start and not exempt:
                problems.append(f"{path.name}:{n}: a brace crosses #{m.group(1)}")
            if m.group(1) == "endif":
                stack.pop()
                cplusplus -= cpp
        elif not cplusplus:
            depth += line.count("{") - line.count("}")
    return problems


def test_every_family_folder_holds_its_header_and_source_only():
    families = [p for p in RUNTIME.iterdir() if p.is_dir()]
    assert {p.name for p in families} >= {"conv", "depthwise", "fully_connected", "pool", "elementwise",
                                          "activation", "reduce", "shape", "softmax", "transpose_conv"}
    for family in families:
        assert {p.name for p in family.iterdir()} == {f"tq_{family.name}.h", f"tq_{family.name}.c"}, family
    assert {p.name for p in RUNTIME.iterdir() if p.is_file()} == SHARED


def test_paths_are_chosen_by_whole_functions():
    problems = [p for path in sorted(RUNTIME.rglob("*.[ch]")) for p in _conditional_problems(path)]
    assert not problems, "\n".join(problems)


def test_one_header_decides_the_path():
    """Only tq_path.h tests the compiler's architecture macros (and tq_simd.h the host's vector extension)."""
    arch = re.compile(r"#\s*(el)?if.*\b(__ARM_FEATURE_DSP|__ARM_ARCH_ISA_THUMB|__SSE2__|__AVX2__|TQ_PORTABLE|"
                      r"TQ_EMULATE_DSP|__ARM_FEATURE_SAT)\b")
    offenders = [f"{p.relative_to(RUNTIME)}:{n}" for p in sorted(RUNTIME.rglob("*.[ch]")) if p.name != "tq_path.h"
                 for n, line in enumerate(p.read_text().split("\n"), 1) if arch.search(line)]
    assert not offenders, offenders
