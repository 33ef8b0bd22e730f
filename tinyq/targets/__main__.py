"""`python3 -m tinyq.targets CORE`: the core's make variables from the registry, for a hand-run
`make -C firmware_stub TARGET=CORE` (the Makefile calls it when tinyq did not pass them)."""

from __future__ import annotations

import sys

from ..errors import TinyqError
from .registry import get


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: python3 -m tinyq.targets CORE   (prints CORE's make variables)", file=sys.stderr)
        return 2
    try:
        target = get(argv[0])
    except TinyqError as exc:
        print(f"tinyq: {exc}", file=sys.stderr)
        return 2
    print(" ".join(f"{k}={v}" for k, v in target.make_variables().items()))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
