"""The lifecycle of one file transfer, as a transition table (sans-I/O).

Rules:

1. An upload goes ``encrypting`` -> ``uploading`` -> ``sending`` -> ``done``: the file is
   sealed into a spool file, the spool file is uploaded (resuming from the relay's offset),
   then the pointer is queued in the end-to-end outbox. Only then is the upload ``done``.
2. A download starts ``new``: within the auto-download limit it goes ``downloading`` at once,
   otherwise it waits ``offered`` until the user asks. ``downloading`` covers fetching the
   ciphertext and checking every chunk and the digest; it is ``done`` only once the checked
   file has its final name.
3. Any active state may ``fail`` (a refusal, a tampered chunk, a file that changed): the
   transfer waits ``failed`` with its reason until ``retry``, which restarts the step that
   failed (an upload re-checks its spool file; a download refetches what it has not checked).
4. ``cancel`` ends any state that is not ``done`` for good: ``cancelled`` is terminal.
5. Every state is persisted; after a restart an active state resumes by itself (the driver
   re-enters it), so nothing here depends on the process that began the transfer.
6. An event a state has no row for is refused (:class:`BadTransition`), never ignored.
"""

from __future__ import annotations

from typing import Final, Literal

from messenger_tui.core.errors import CoreError

TransferStatus = Literal[
    "encrypting", "uploading", "sending", "new", "offered", "downloading", "done", "failed",
    "cancelled",
]  # fmt: skip
TransferEvent = Literal[
    "encrypted", "uploaded", "queued", "auto", "hold", "request", "verified", "fail", "retry",
    "cancel",
]  # fmt: skip

#: States a driver works on (resumed after a restart).
ACTIVE: Final[frozenset[str]] = frozenset(
    {"encrypting", "uploading", "sending", "new", "downloading"}
)
#: States that never change again.
TERMINAL: Final[frozenset[str]] = frozenset({"done", "cancelled"})


class BadTransition(CoreError):
    """An event the transfer's state has no row for."""


_ROWS: Final[dict[tuple[str, str], str]] = {
    ("encrypting", "encrypted"): "uploading",
    ("uploading", "uploaded"): "sending",
    ("sending", "queued"): "done",
    ("new", "auto"): "downloading",
    ("new", "hold"): "offered",
    ("offered", "request"): "downloading",
    ("downloading", "verified"): "done",
}
for _state in ACTIVE:
    _ROWS[(_state, "fail")] = "failed"
for _state in ACTIVE | {"offered", "failed"}:
    _ROWS[(_state, "cancel")] = "cancelled"

TRANSITIONS: Final = dict(_ROWS)


def next_status(direction: Literal["up", "down"], status: str, event: str) -> TransferStatus:
    """The state after ``event`` (rule 3's ``retry`` goes back to the direction's first
    working state); :class:`BadTransition` when there is no row."""
    if status == "failed" and event == "retry":
        return "encrypting" if direction == "up" else "downloading"
    try:
        target = TRANSITIONS[(status, event)]
    except KeyError:
        raise BadTransition(f"a transfer that is {status} cannot take {event!r}") from None
    return target  # type: ignore[return-value]
