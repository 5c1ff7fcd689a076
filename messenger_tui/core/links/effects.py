"""What the connection machines ask their driver to do. The driver carries them out in order.

The machines never connect, sleep or call back: :class:`Connect` starts one attempt in the
background, :class:`Wait` says a timer was armed (the driver calls ``poll`` at the machine's
``next_deadline``), :class:`Abort` cancels the attempt in flight, and :class:`Report` is a
state change (or a new error) to show.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import Generic, Protocol, TypeVar

S = TypeVar("S", bound=Enum)


class DelayPolicy(Protocol):
    """Retry delays (``messenger_tui.transport.backoff.Backoff`` is one)."""

    def next_delay(self) -> float: ...

    def reset(self) -> None: ...


@dataclass(frozen=True, slots=True)
class Connect:
    """Start one connection attempt; report its outcome to the machine."""


@dataclass(frozen=True, slots=True)
class Abort:
    """Cancel the connection attempt in flight (its outcome is no longer wanted)."""


@dataclass(frozen=True, slots=True)
class Wait:
    """A retry timer of ``delay`` seconds was armed: call ``poll`` at ``next_deadline``."""

    delay: float


@dataclass(frozen=True, slots=True)
class Report(Generic[S]):
    """Show this state; ``retry_in`` (seconds) and ``error`` (user-readable) when known."""

    state: S
    retry_in: float | None = None
    error: str | None = None


#: Any effect of a connection machine reporting states of type ``S``.
ConnectionEffect = Connect | Abort | Wait | Report[S]
