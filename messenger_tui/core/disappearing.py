"""Disappearing messages: the per-conversation timer and when a message expires (sans-I/O).

Rules
=====

1. **The timer is a versioned register per conversation.** A setting is ``(seconds, version,
   author)``: ``seconds`` 0 means off; ``version`` counts the changes (a Lamport counter: a
   member who changes the timer gives it the highest version it has seen plus one); ``author``
   is the identity key of the member who made that change. Of two settings the one with the
   higher ``(version, author)`` wins (:func:`merge`): bytewise author order breaks a tie, so two
   members who change the timer at once, each having seen the other's change or not, end on the
   same setting once both changes arrived, whatever the order of arrival.
2. **An absent statement is not "off".** Every text carries the setting it was sent under
   (:class:`~messenger_tui.core.payload.TimerStamp`); a text from a client that omits it says
   nothing about the timer: the conversation keeps its setting (the bug gurk#79 hit was reading
   a missing field as "off" and turning it off for everyone). Only a setting with ``seconds``
   0 and a winning version turns it off.
3. **The countdown starts at send for the sender and at read for the recipient**
   (:func:`expires_at_ms`). A message is stored with the timer it was sent or received under
   (``expire_after``); a received message starts counting only once it was shown to the user.
   A message stored while the timer is off never expires, and a later change of the timer does
   not touch messages already stored.
4. **Expiry is a deadline, not a timer per message.** :func:`next_wakeup` turns the earliest
   deadline into one delay; the I/O side keeps one timer and purges every message whose
   deadline passed when it fires, and once when the profile opens (a message may have expired
   while nothing ran).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final

#: The timers the UI offers, in seconds (0: off). Any whole number of seconds from 1 to
#: :data:`MAX_TIMER_S` is valid on the wire (tests use a few seconds).
PRESETS: Final = (0, 30, 5 * 60, 60 * 60, 24 * 60 * 60, 7 * 24 * 60 * 60)
#: The longest timer: four weeks.
MAX_TIMER_S: Final = 28 * 24 * 60 * 60
#: The highest version accepted on the wire. A peer cannot pin the timer by jumping the counter
#: to the top of its range: a version more than :data:`MAX_VERSION_JUMP` above the highest one
#: seen in the conversation is refused (honest members add 1 to what they saw).
MAX_VERSION: Final = 2**62
MAX_VERSION_JUMP: Final = 1 << 20

_UNITS: Final = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


class TimerError(ValueError):
    """A timer that is not one: bad duration text, or a version out of bounds."""


@dataclass(frozen=True, order=True)
class TimerSetting:
    """One conversation's timer. Ordered by ``(version, author)``: the winner is the max."""

    version: int
    author: bytes
    seconds: int

    @property
    def enabled(self) -> bool:
        return self.seconds > 0


#: The setting of a conversation nobody changed: off, version 0.
OFF: Final = TimerSetting(version=0, author=b"", seconds=0)


def merge(current: TimerSetting, incoming: TimerSetting) -> TimerSetting:
    """The setting after ``incoming`` arrives: the higher ``(version, author)``. Commutative,
    associative and idempotent, so every member converges on the same setting."""
    return max(current, incoming, key=lambda s: (s.version, s.author, s.seconds))


def check_incoming(current: TimerSetting, incoming: TimerSetting) -> None:
    """Refuse a setting no honest member sends (:class:`TimerError`): seconds out of range,
    or a version that jumps far past every version seen (it would pin the timer)."""
    if not 0 <= incoming.seconds <= MAX_TIMER_S:
        raise TimerError(f"a timer of {incoming.seconds} s is out of range")
    if not 0 <= incoming.version <= MAX_VERSION:
        raise TimerError(f"timer version {incoming.version} is out of range")
    if incoming.version > current.version + MAX_VERSION_JUMP:
        raise TimerError(f"timer version {incoming.version} jumps too far past {current.version}")


def change(current: TimerSetting, seconds: int, author: bytes) -> TimerSetting:
    """The setting a member makes when it sets the timer to ``seconds``."""
    check_seconds(seconds)
    return TimerSetting(version=current.version + 1, author=author, seconds=seconds)


def check_seconds(seconds: int) -> int:
    if not 0 <= seconds <= MAX_TIMER_S:
        raise TimerError(
            f"a disappearing-message timer is off or 1 s to {MAX_TIMER_S // 86400} days"
        )
    return seconds


def expires_at_ms(expire_after_s: int | None, start_ms: int) -> int | None:
    """When a message stored under a timer of ``expire_after_s`` (None or 0: none) expires,
    its countdown started at ``start_ms`` (the send for the sender, the read for the
    recipient). None: it never expires."""
    if not expire_after_s:
        return None
    return start_ms + expire_after_s * 1000


def is_expired(expires_at: int | None, now_ms: int) -> bool:
    return expires_at is not None and expires_at <= now_ms


def next_wakeup(earliest_expiry_ms: int | None, now_ms: int) -> float | None:
    """Seconds until the one purge timer should fire (0: purge now); None: nothing expires."""
    if earliest_expiry_ms is None:
        return None
    return max(0.0, (earliest_expiry_ms - now_ms) / 1000)


_DURATION = re.compile(r"(\d+)([smhdw]?)")


def parse_duration(text: str) -> int:
    """``off``, ``0``, ``30s``, ``5m``, ``1h``, ``1d``, ``1w`` or a number of seconds, to
    seconds (:class:`TimerError` saying what is accepted otherwise)."""
    cleaned = text.strip().lower()
    if cleaned in ("off", "none", "0"):
        return 0
    match = _DURATION.fullmatch(cleaned)
    if match is None:
        raise TimerError(
            f"{text!r} is not a duration: use off, 30s, 5m, 1h, 1d, 1w or a number of seconds"
        )
    return check_seconds(int(match.group(1)) * _UNITS[match.group(2) or "s"])


def describe(seconds: int) -> str:
    """A timer in short words: ``off``, ``30 s``, ``5 min``, ``1 h``, ``1 day``, ``1 week``."""
    if seconds <= 0:
        return "off"
    for unit, size, plural in (("week", 604800, "weeks"), ("day", 86400, "days")):
        if seconds % size == 0:
            n = seconds // size
            return f"{n} {unit if n == 1 else plural}"
    if seconds % 3600 == 0:
        return f"{seconds // 3600} h"
    if seconds % 60 == 0:
        return f"{seconds // 60} min"
    return f"{seconds} s"
