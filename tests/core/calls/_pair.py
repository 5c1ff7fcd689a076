"""Two signalling machines joined without a network (like h11's ConnectionPair).

Each phone's ``SendSignal`` effects go through the encoder and into the other phone's inbox;
the test decides when (and whether) to deliver, so loss, delay, duplication and crossing
messages are all explicit. Time is a plain integer the test advances.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from typing import TypeVar

from messenger_tui.core.calls.effects import CallEffect, SendSignal
from messenger_tui.core.calls.messages import (
    CallMessage,
    decode_call_message,
    encode_call_message,
)
from messenger_tui.core.calls.signalling import CallSignalling, CallTimeouts

from ..crypto._util import DeterministicRng

ALICE = b"A" * 32
BOB = b"B" * 32
CAROL = b"C" * 32
T0 = 1_700_000_000_000

E = TypeVar("E", bound=CallEffect)


@dataclass
class Phone:
    name: bytes
    machine: CallSignalling
    effects: list[CallEffect] = field(default_factory=list)
    #: (sender, encoded message) not yet delivered to this phone
    inbox: list[tuple[bytes, bytes]] = field(default_factory=list)

    def of(self, kind: type[E]) -> list[E]:
        return [e for e in self.effects if isinstance(e, kind)]


class PhoneNetwork:
    """Any number of phones; ``now`` is shared (clocks agree unless a test says otherwise)."""

    def __init__(self, *names: bytes, seed: bytes = b"calls", timeouts: CallTimeouts | None = None):
        self.now = T0
        self.phones = {
            name: Phone(
                name,
                CallSignalling(rng=DeterministicRng(seed + name), timeouts=timeouts),
            )
            for name in names
        }

    def __getitem__(self, name: bytes) -> Phone:
        return self.phones[name]

    def act(
        self, name: bytes, step: Callable[[CallSignalling], list[CallEffect]]
    ) -> list[CallEffect]:
        """Run ``step`` on a phone's machine and post the messages it asks to send."""
        phone = self.phones[name]
        effects = step(phone.machine)
        phone.effects.extend(effects)
        for effect in effects:
            if isinstance(effect, SendSignal) and effect.peer in self.phones:
                self.phones[effect.peer].inbox.append((name, encode_call_message(effect.message)))
        return effects

    def deliver(self, name: bytes, *, drop: Callable[[CallMessage], bool] | None = None) -> int:
        """Deliver everything waiting for ``name`` (optionally dropping some); returns count."""
        phone = self.phones[name]
        pending, phone.inbox = phone.inbox, []
        count = 0
        for sender, data in pending:
            message = decode_call_message(data)
            if drop and drop(message):
                continue
            count += 1
            self.act(
                name, partial(CallSignalling.receive, peer=sender, message=message, now_ms=self.now)
            )
        return count

    def settle(self) -> None:
        """Deliver until no messages are in flight."""
        while any(p.inbox for p in self.phones.values()):
            for name in self.phones:
                self.deliver(name)

    def advance(self, ms: int) -> None:
        """Move time forward and fire every deadline that passed, in time order."""
        end = self.now + ms
        while True:
            due = [
                (p.machine.next_deadline_ms, name)
                for name, p in self.phones.items()
                if p.machine.next_deadline_ms is not None and p.machine.next_deadline_ms <= end
            ]
            if not due:
                break
            when, name = min(due)
            self.now = max(self.now, when)
            self.act(name, partial(CallSignalling.poll, now_ms=self.now))
        self.now = end
