"""Fixtures for every test: one private PulseAudio server per test process, for the tests that
go through real PortAudio devices (``pulse_server``, tests/helpers/pulseaudio.py).

The suite runs in parallel (``make test``: pytest-xdist, ``-n 4 --dist loadgroup``). Every
resource a test starts is its own (temporary directories, free ports, one PulseAudio server and
one redis-server per worker process, a tmux socket per test), so tests may run beside each
other in any order. Two rules keep the distribution cheap and the timing tests honest:

* A module whose tests share a module-scoped fixture (a relay process, synthesised speech) runs
  on one worker, so the fixture is set up once, not once per worker: its tests get the
  ``xdist_group`` of the module (below).
* Tests that measure real time with real processes (call quality and delay, echo, pacing)
  carry ``@pytest.mark.xdist_group("realtime")``: they never run beside each other, only beside
  tests that wait on processes. Each of them still passes with two busy loops beside it.
"""

from __future__ import annotations

import pytest

from tests.helpers.pulseaudio import pulse_server, pulse_session

__all__ = ["pulse_server", "pulse_session"]

_SHARED_SCOPES = {"module", "package", "class"}


@pytest.hookimpl(tryfirst=True)  # before xdist reads the groups (its hook runs later)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Give each test that uses a module-scoped fixture its module's xdist group (unless it
    has a group of its own), so ``--dist loadgroup`` keeps the module on one worker."""
    for item in items:
        if item.get_closest_marker("xdist_group") is not None:
            continue
        fixture_info = getattr(item, "_fixtureinfo", None)
        if fixture_info is None:
            continue
        shared = any(
            defs[-1].scope in _SHARED_SCOPES and defs[-1].baseid  # not a plugin's fixture
            for defs in fixture_info.name2fixturedefs.values()
            if defs
        )
        if shared:
            item.add_marker(pytest.mark.xdist_group(item.nodeid.split("::", 1)[0]))
