"""The transfer lifecycle table, row by row (core/attachments/transfer_states.py)."""

from __future__ import annotations

import pytest

from messenger_tui.core.attachments.transfer_states import (
    ACTIVE,
    TERMINAL,
    TRANSITIONS,
    BadTransition,
    next_status,
)

ALL = sorted(ACTIVE | TERMINAL | {"offered", "failed"})
EVENTS = sorted({event for _, event in TRANSITIONS} | {"retry"})


@pytest.mark.parametrize(
    ("direction", "status", "event", "target"),
    [
        ("up", "encrypting", "encrypted", "uploading"),
        ("up", "uploading", "uploaded", "sending"),
        ("up", "sending", "queued", "done"),
        ("down", "new", "auto", "downloading"),
        ("down", "new", "hold", "offered"),
        ("down", "offered", "request", "downloading"),
        ("down", "downloading", "verified", "done"),
        ("up", "uploading", "fail", "failed"),
        ("down", "downloading", "fail", "failed"),
        ("up", "failed", "retry", "encrypting"),
        ("down", "failed", "retry", "downloading"),
        ("up", "failed", "cancel", "cancelled"),
        ("down", "offered", "cancel", "cancelled"),
        ("up", "encrypting", "cancel", "cancelled"),
    ],
)
def test_rows(direction: str, status: str, event: str, target: str) -> None:
    assert next_status(direction, status, event) == target  # type: ignore[arg-type]


@pytest.mark.parametrize("status", sorted(TERMINAL))
@pytest.mark.parametrize("event", EVENTS)
def test_terminal_states_take_no_event(status: str, event: str) -> None:
    with pytest.raises(BadTransition, match=f"{status} cannot take"):
        next_status("up", status, event)


def test_every_active_state_can_fail_and_be_cancelled_and_nothing_else_is_implied() -> None:
    for status in ACTIVE:
        assert TRANSITIONS[(status, "fail")] == "failed"
        assert TRANSITIONS[(status, "cancel")] == "cancelled"
    # a waiting state cannot "fail" (nothing runs) and retry exists only for failed
    with pytest.raises(BadTransition):
        next_status("down", "offered", "fail")
    for status in ALL:
        if status != "failed":
            with pytest.raises(BadTransition):
                next_status("down", status, "retry")
    # events out of order are refused, not ignored
    with pytest.raises(BadTransition):
        next_status("up", "encrypting", "uploaded")
    with pytest.raises(BadTransition):
        next_status("down", "offered", "verified")
