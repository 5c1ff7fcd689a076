"""The service, and the snapshot tests' fixed fake, both satisfy the facade protocol the UI is
typed against: statically (mypy reads the assignments below) and by name at run time."""

from __future__ import annotations

import inspect
from typing import TYPE_CHECKING

import pytest

from messenger_tui.app.facade import MessengerFacade
from messenger_tui.app.service import MessengerService
from tests.ui.snapshot_facade import SnapshotFacade

if TYPE_CHECKING:
    _service: type[MessengerFacade] = MessengerService
    _fake: type[MessengerFacade] = SnapshotFacade


def _members(cls: type) -> set[str]:
    return {name for name in dir(cls) if not name.startswith("_")}


def _protocol_members() -> set[str]:
    own = set(vars(MessengerFacade)) - set(vars(object))
    return {name for name in own if not name.startswith("_")}


@pytest.mark.parametrize("cls", [MessengerService, SnapshotFacade])
def test_every_facade_member_exists_with_the_same_kind(cls: type) -> None:
    members = _protocol_members()
    assert len(members) > 40  # the protocol itself was read
    # ``profile`` is set per instance (the service's __init__, the fake's dataclass field).
    attrs = _members(cls) | set(getattr(cls, "__annotations__", {})) | {"profile"}
    assert members - attrs == set()
    for name in members:
        expected = getattr(MessengerFacade, name)
        got = getattr(cls, name, None)
        if got is None:  # an instance attribute (profile)
            continue
        if inspect.iscoroutinefunction(expected):
            assert inspect.iscoroutinefunction(got), f"{cls.__name__}.{name} must be async"
        elif callable(expected) and not isinstance(expected, property):
            assert not inspect.iscoroutinefunction(got), f"{cls.__name__}.{name} must be sync"
