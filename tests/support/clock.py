"""A fake clock for the HTTP clients' tests: their waits are recorded, not slept."""

from __future__ import annotations


class Clock:
    """A monotonic clock that sleeping moves forward; real time passes only in real HTTP calls."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds
