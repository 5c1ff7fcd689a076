"""Mailbox quotas: how much one recipient's mailbox may hold, split by trust (sans-I/O).

Every stored envelope is either a *contact* envelope (its sender presented the recipient's
delivery secret, see :mod:`messenger_tui.core.delivery_access`) or a *request* (a message
request: no secret, or a wrong one). The two classes have separate budgets, so requests can
fill theirs without taking anything from contacts:

* contact envelopes: at most ``contact_count`` envelopes and ``contact_bytes`` body bytes;
* requests: at most ``request_count`` envelopes and ``request_bytes`` body bytes in total,
  and at most ``request_per_sender`` envelopes from any one sender.

A recipient's mailbox thus never holds more than ``contact_bytes + request_bytes`` bytes.
Duplicates are decided before quotas (a resend of a stored envelope is always DUPLICATE).

:class:`MailboxUsage` is what a backend counts per recipient (expired-but-unpurged envelopes
included); :func:`admit` decides one insert, :meth:`MailboxUsage.add`/:meth:`MailboxUsage.remove`
keep the counts exact.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from messenger_tui.relay.store import InsertOutcome


@dataclass(frozen=True, slots=True)
class MailboxQuota:
    """The limits of one recipient's mailbox (see the module docstring)."""

    contact_count: int = 100_000
    contact_bytes: int = 1024 * 1024 * 1024
    request_count: int = 1_000
    request_bytes: int = 16 * 1024 * 1024
    request_per_sender: int = 20

    def __post_init__(self) -> None:
        for name in self.__slots__:
            if getattr(self, name) < 1:
                raise ValueError(f"mailbox quota {name} must be positive")


@dataclass(slots=True)
class MailboxUsage:
    """What one mailbox holds, by class; requests also per sender."""

    contact_count: int = 0
    contact_bytes: int = 0
    request_count: int = 0
    request_bytes: int = 0
    request_by_sender: dict[bytes, int] = field(default_factory=dict)

    def add(self, *, request: bool, sender: bytes, size: int, count: int = 1) -> None:
        """Count ``count`` stored envelopes of ``size`` bytes in total."""
        if request:
            self.request_count += count
            self.request_bytes += size
            self.request_by_sender[sender] = self.request_by_sender.get(sender, 0) + count
        else:
            self.contact_count += count
            self.contact_bytes += size

    def remove(self, *, request: bool, sender: bytes, size: int) -> None:
        """Forget one deleted envelope of ``size`` bytes."""
        if request:
            self.request_count -= 1
            self.request_bytes -= size
            left = self.request_by_sender.get(sender, 0) - 1
            if left > 0:
                self.request_by_sender[sender] = left
            else:
                self.request_by_sender.pop(sender, None)
        else:
            self.contact_count -= 1
            self.contact_bytes -= size


def admit(
    usage: MailboxUsage, quota: MailboxQuota, *, request: bool, sender: bytes, size: int
) -> InsertOutcome:
    """STORED if one more envelope fits its class's budget, else why not (nothing changes:
    call :meth:`MailboxUsage.add` after storing)."""
    if not request:
        if usage.contact_count >= quota.contact_count:
            return InsertOutcome.MAILBOX_FULL
        if usage.contact_bytes + size > quota.contact_bytes:
            return InsertOutcome.MAILBOX_FULL
        return InsertOutcome.STORED
    if usage.request_by_sender.get(sender, 0) >= quota.request_per_sender:
        return InsertOutcome.SENDER_REQUESTS_FULL
    if usage.request_count >= quota.request_count:
        return InsertOutcome.REQUESTS_FULL
    if usage.request_bytes + size > quota.request_bytes:
        return InsertOutcome.REQUESTS_FULL
    return InsertOutcome.STORED
