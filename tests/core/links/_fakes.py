"""A deterministic backoff for the lifecycle tables' tests: base * 2**attempt, capped."""

from __future__ import annotations


class DoublingDelays:
    def __init__(self, base: float = 0.5, cap: float = 30.0) -> None:
        self.base = base
        self.cap = cap
        self.attempt = 0
        self.resets = 0

    def next_delay(self) -> float:
        delay: float = min(self.cap, self.base * 2**self.attempt)
        self.attempt += 1
        return delay

    def reset(self) -> None:
        self.attempt = 0
        self.resets += 1
