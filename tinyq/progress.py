"""Progress reporting: library code calls one callback with a plain message, or with a `Count` for a long step
whose size is known, and never prints; the command line decides how to show it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Union


@dataclass(frozen=True)
class Count:
    """`done` of `total` items of the step called `message` are finished (done == 0 announces the step)."""

    message: str
    done: int
    total: int

    def __post_init__(self) -> None:
        if self.total < 0 or not 0 <= self.done <= self.total:
            raise ValueError(f"progress count {self.done} of {self.total} for {self.message!r}")


Event = Union[str, Count]
Progress = Callable[[Event], None]


def silent(_event: Event) -> None:
    """The callback of a caller that wants no progress."""


def counted(say: Progress, message: str, total: int, every: int = 1):
    """A function `tick(done)` that reports every `every` items and at the end, for a loop of `total` items."""
    say(Count(message, 0, total))

    def tick(done: int) -> None:
        if done == total or done % every == 0:
            say(Count(message, done, total))

    return tick
