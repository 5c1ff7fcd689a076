"""Speaker selection of a group call room: the loudest few senders each receiver gets.

Input is the clear level byte of each group frame (RFC 6464 style: bits 0-6 = level in -dBov,
:mod:`messenger_tui.core.calls.group_frames`); the relay reads that byte and nothing else.

Rules:

1. Each sender's loudness is ``127 - level`` (dB above -127 dBov), smoothed per frame with an
   exponential average (``smoothing``; 0.3 per 20 ms frame is a ~60 ms time constant).
2. With at most ``max_speakers`` other participants, a receiver gets every one of them.
3. Otherwise every ``reselect_s`` each receiver's selection is updated: members that left drop
   out, free places go to the loudest unselected senders, then the quietest selected sender is
   swapped for the loudest unselected one while the latter is louder by more than
   ``hysteresis_db`` (so two speakers of similar level do not flap in and out).
4. A sender that some receiver does not get and whose loudness passes that receiver's
   quietest selected sender by more than ``hysteresis_db`` triggers the update at once, on the
   frame that crossed (so a talker's first syllable is not clipped by the update period).
5. A receiver never gets its own frames.
"""

from __future__ import annotations

from collections.abc import Hashable
from typing import Final, Generic, TypeVar

K = TypeVar("K", bound=Hashable)

#: Quietest level byte value (-127 dBov, digital silence).
_SILENT: Final = 127


class SpeakerSelector(Generic[K]):
    """Per-receiver top-N selection with hysteresis (sans-I/O; time comes in as ``now``)."""

    def __init__(
        self,
        *,
        max_speakers: int = 3,
        hysteresis_db: float = 6.0,
        smoothing: float = 0.3,
        reselect_s: float = 0.1,
    ) -> None:
        if max_speakers < 1 or not 0 < smoothing <= 1 or hysteresis_db < 0:
            raise ValueError("max_speakers >= 1, 0 < smoothing <= 1, hysteresis_db >= 0")
        self.max_speakers = max_speakers
        self._hysteresis = hysteresis_db
        self._smoothing = smoothing
        self._reselect_s = reselect_s
        self._loudness: dict[K, float] = {}
        self._selected: dict[K, set[K]] = {}
        self._next_reselect = 0.0
        # senders some receiver does not get, and the loudness that promotes one at once
        self._unselected: set[K] = set()
        self._promote_above = float("inf")

    def add(self, member: K) -> None:
        """A participant joined (silent until its frames say otherwise)."""
        self._loudness.setdefault(member, 0.0)
        self._selected.setdefault(member, set())
        self._reselect()

    def remove(self, member: K) -> None:
        self._loudness.pop(member, None)
        self._selected.pop(member, None)
        for selection in self._selected.values():
            selection.discard(member)
        self._reselect()

    def loudness(self, member: K) -> float:
        return self._loudness.get(member, 0.0)

    def observe(self, sender: K, level_byte: int, now: float) -> None:
        """A frame from ``sender`` with this level byte arrived at ``now``."""
        loud = float(_SILENT - (level_byte & _SILENT))
        old = self._loudness.get(sender)
        if old is None:
            return  # not a member (left while its frame was in flight)
        new = self._loudness[sender] = old + self._smoothing * (loud - old)
        if now >= self._next_reselect or (new > self._promote_above and sender in self._unselected):
            self._next_reselect = now + self._reselect_s
            self._reselect()

    def forwards(self, receiver: K, sender: K) -> bool:
        """Whether ``receiver`` gets ``sender``'s frames now."""
        if receiver == sender:
            return False
        if len(self._loudness) - 1 <= self.max_speakers:
            return sender in self._loudness
        selection = self._selected.get(receiver)
        return selection is not None and sender in selection

    def selected(self, receiver: K) -> set[K]:
        """The senders ``receiver`` gets now."""
        return {s for s in self._loudness if self.forwards(receiver, s)}

    def _reselect(self) -> None:
        loudness = self._loudness
        self._unselected = set()
        self._promote_above = float("inf")
        if len(loudness) - 1 <= self.max_speakers:
            return
        ranked = sorted(loudness, key=loudness.__getitem__, reverse=True)
        for receiver, selection in self._selected.items():
            selection.intersection_update(loudness)
            selection.discard(receiver)
            for sender in ranked:
                if len(selection) >= self.max_speakers:
                    break
                if sender != receiver:
                    selection.add(sender)
            while True:
                quietest = min(selection, key=loudness.__getitem__)
                challenger = next((s for s in ranked if s != receiver and s not in selection), None)
                if challenger is None or (
                    loudness[challenger] <= loudness[quietest] + self._hysteresis
                ):
                    break
                selection.discard(quietest)
                selection.add(challenger)
            quietest_loudness = min(loudness[s] for s in selection)
            self._promote_above = min(self._promote_above, quietest_loudness + self._hysteresis)
            self._unselected.update(s for s in loudness if s != receiver and s not in selection)
