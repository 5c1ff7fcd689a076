"""Snapshot tests of the settings screen at 80x24 and 160x50, on the deterministic
:class:`~tests.ui.snapshot_facade.SnapshotFacade` (see test_snapshots.py for how they run and
how to regenerate the baselines)."""

from __future__ import annotations

import dataclasses

import pytest
from textual.pilot import Pilot

from messenger_tui.ui.screens.main import MainScreen
from messenger_tui.ui.screens.settings import SettingsScreen

from .conftest import LARGE, SMALL, wait_until
from .snapshot_facade import SnapshotFacade, main_scene
from .test_snapshots import SIZES, SnapCompare, _snap, frozen_clock

__all__ = ["frozen_clock"]


async def open_settings(pilot: Pilot[object], screen: MainScreen) -> None:
    await pilot.press("f9")
    await wait_until(
        pilot,
        lambda: (
            isinstance(pilot.app.screen, SettingsScreen)
            and pilot.app.screen.is_mounted
            and pilot.app.screen.devices is not None
        ),
        what="the settings screen with its audio devices",
    )
    await pilot.pause()


async def to_the_passphrase(pilot: Pilot[object], screen: MainScreen) -> None:
    settings = pilot.app.screen
    assert isinstance(settings, SettingsScreen)
    settings.query_one("#change-passphrase").focus()
    await pilot.pause()


class _NoCallFacade(SnapshotFacade):
    """The main scene without a call (the snapshot facade may not know calls yet)."""

    def current_call(self) -> None:
        return None


def _scene(*, passphrase: bool) -> SnapshotFacade:
    base = main_scene()
    f = _NoCallFacade()
    for field in dataclasses.fields(SnapshotFacade):
        setattr(f, field.name, getattr(base, field.name))
    f.current_settings = dataclasses.replace(
        f.current_settings, desktop=True, read_receipts=False, passphrase_set=passphrase
    )
    return f


class TestSettings:
    @SIZES
    def test_settings(self, snap_compare: SnapCompare, size: tuple[int, int]) -> None:
        """The settings as they open: notifications (desktop on), privacy (read receipts
        off), the theme, the relay URL; at 160x50 the passphrase part too."""
        assert _snap(snap_compare, _scene(passphrase=False), size, open_settings)

    @pytest.mark.parametrize("size", [SMALL, LARGE], ids=["80x24", "160x50"])
    def test_passphrase_part(self, snap_compare: SnapCompare, size: tuple[int, int]) -> None:
        """Scrolled to the passphrase (one is set: the current-passphrase field shows)."""
        assert _snap(snap_compare, _scene(passphrase=True), size, open_settings, to_the_passphrase)
