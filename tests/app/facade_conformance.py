"""Static checks, run by mypy (pyproject [tool.mypy] files), not by pytest: the real service
and the UI snapshot tests' fake both implement the facade the UI is typed against, and the
launcher the profile gate. A method that drifts (renamed, a parameter added, another return
type) fails ``mypy`` here, naming the member."""

from __future__ import annotations

from messenger_tui.app.facade import MessengerFacade, ProfileGate
from messenger_tui.app.launcher import Launcher
from messenger_tui.app.service import MessengerService
from tests.ui.snapshot_facade import SnapshotFacade


def _service_conforms(service: MessengerService) -> MessengerFacade:
    return service


def _fake_conforms(fake: SnapshotFacade) -> MessengerFacade:
    return fake


def _launcher_conforms(launcher: Launcher) -> ProfileGate:
    return launcher
