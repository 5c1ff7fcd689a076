"""Snapshot of a group call (issue 15): the call pane above the group's conversation with
three participants: one speaking (●), one heard and quiet (○), one not heard yet; the call
keys in the footer. 80x24; same conventions as test_snapshots.py (regenerate with
``--snapshot-update``, and read the SVG's text before accepting it)."""

from __future__ import annotations

import dataclasses

from messenger_tui.app.group_models import GroupCallParticipant, GroupCallView
from messenger_tui.ui.widgets.group_call_pane import pane_text

from .conftest import SMALL
from .snapshot_facade import SnapshotFacade, fixed_identity, group_scene
from .test_snapshots import SnapCompare, _snap, frozen_clock, no_blinking
from .test_snapshots_groups import open_group

__all__ = ["frozen_clock", "no_blinking"]  # the autouse fixtures, applied here too


def group_call_scene() -> SnapshotFacade:
    f = group_scene()
    f.fixed_group_calls.views["Book club"] = GroupCallView(
        group_row=1,
        group_name="Book club",
        state="in_call",
        participants=(
            GroupCallParticipant(
                fixed_identity("Bob"), "Bob", speaking=True, level_dbov=-18,
                frames_received=1520, loss_percent=0.2, delay_ms=60, heard=True,
            ),
            GroupCallParticipant(
                fixed_identity("Carol"), "Carol", level_dbov=-70, frames_received=1490,
                loss_percent=0.0, delay_ms=80, heard=True,
            ),
            GroupCallParticipant(fixed_identity("Dave"), "Dave"),
        ),
        joined_ms=0,
    )  # fmt: skip
    return f


def test_group_call_pane(snap_compare: SnapCompare) -> None:
    assert _snap(snap_compare, group_call_scene(), SMALL, open_group)


def test_group_call_pane_text_before_snapshot() -> None:
    """The pane's lines, as words (what the SVG must show)."""
    view = group_call_scene().fixed_group_calls.views["Book club"]
    text = pane_text(view)
    assert text is not None
    assert text.plain.splitlines() == [
        "☏ In the call · 3 others  F6 mute  F7 leave",
        "  ● Bob  loss 0.2 %  buffer 60 ms",
        "  ○ Carol  loss 0.0 %  buffer 80 ms",
        "  ○ Dave  not heard yet",
    ]


def _with_state(state: str) -> SnapshotFacade:
    f = group_call_scene()
    views = f.fixed_group_calls.views
    views["Book club"] = dataclasses.replace(views["Book club"], state=state)
    return f


def test_group_call_over(snap_compare: SnapCompare) -> None:
    """A "call over" reached us (rule 10): the call ended without a problem, so the pane is
    gone and nothing offers to join; F5 starts a new call."""
    assert _snap(snap_compare, _with_state("ended"), SMALL, open_group)


def test_group_call_rejoining(snap_compare: SnapCompare) -> None:
    """Our leg dropped and rejoins by itself (rule 9)."""
    assert _snap(snap_compare, _with_state("rejoining"), SMALL, open_group)


def test_group_call_over_and_rejoining_pane_text() -> None:
    assert pane_text(_with_state("ended").fixed_group_calls.views["Book club"]) is None
    rejoining = pane_text(_with_state("rejoining").fixed_group_calls.views["Book club"])
    assert rejoining is not None
    assert rejoining.plain == "☏ Connection lost, rejoining the call…  F7 leave"
