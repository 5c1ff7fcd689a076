"""Fixtures for every test: one private PulseAudio server per test process, for the tests that
go through real PortAudio devices (``pulse_server``, tests/helpers/pulseaudio.py).

The suite runs in parallel (``make test``: pytest-xdist, ``-n 4 --dist loadgroup``). Every
resource a test starts is its own (temporary directories, free ports, one PulseAudio server and
one redis-server per worker process, a tmux socket per test), so tests may run beside each
other in any order. Two rules keep the distribution cheap and the timing tests honest:

* A module whose tests share a module-scoped fixture (a relay process, synthesised speech) runs
  on one worker, so the fixture is set up once, not once per worker: its tests get the
  ``xdist_group`` of the module (below).
* Tests that measure real time with real processes (call quality and delay, echo, latency
  under a flood, pacing) carry ``@pytest.mark.xdist_group("realtime")``: they run on one
  worker, and while one runs, the other workers start no test (a readers-writer lock on a
  file shared by the workers: every test holds it shared, a realtime test exclusively). The
  rest of the suite is free to load the CPU; what a realtime test measures is then the code
  under test, with only the machine's other load beside it.
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Generator
from pathlib import Path

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


def _is_realtime(item: pytest.Item) -> bool:
    mark = item.get_closest_marker("xdist_group")
    return mark is not None and (mark.args or (mark.kwargs.get("name"),))[0] == "realtime"


def _take_machine_share(directory: Path, exclusive: bool) -> tuple[int, int]:
    """Take the workers' readers-writer lock: shared for a test, exclusive for a realtime one.
    A realtime test first closes the door (``turnstile``), so that no test starts while it
    waits for the tests already running (``room``) to finish. Returns what to give back to
    :func:`_give_back`."""
    turnstile = os.open(directory / "realtime.turnstile", os.O_RDWR | os.O_CREAT, 0o600)
    room = os.open(directory / "realtime.room", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        if exclusive:
            fcntl.flock(turnstile, fcntl.LOCK_EX)
            fcntl.flock(room, fcntl.LOCK_EX)
        else:
            fcntl.flock(turnstile, fcntl.LOCK_SH)
            fcntl.flock(room, fcntl.LOCK_SH)
            fcntl.flock(turnstile, fcntl.LOCK_UN)
    except BaseException:
        _give_back((turnstile, room))
        raise
    return turnstile, room


def _give_back(share: tuple[int, int]) -> None:
    for fd in share:
        os.close(fd)  # closing drops the locks


@pytest.fixture(autouse=True)
def _realtime_children_unmeasured(
    request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A realtime test's child processes (clients, relays) run without coverage's tracer.
    ``make test`` measures child processes (pyproject's ``[tool.coverage.run] patch``), and the
    tracer slows a client's Python 2-3 times: under load a traced call process missed its
    device deadlines, and the test measured the tracer (PESQ 2.87 where the untraced code
    scores 3.5-3.8). The realtime tests measure the code as users run it."""
    if _is_realtime(request.node):
        for name in ("COVERAGE_PROCESS_CONFIG", "COVERAGE_PROCESS_START"):
            monkeypatch.delenv(name, raising=False)


#: The exclusive share a realtime test kept for the realtime test after it on this worker.
_kept_share: tuple[int, int] | None = None


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(
    item: pytest.Item, nextitem: pytest.Item | None
) -> Generator[None, None, None]:
    """Under pytest-xdist, run each test (setup, call, teardown) inside the workers' lock
    (:func:`_take_machine_share`). The lock files live in the run's base temporary directory,
    which all workers share. A realtime test followed by another realtime test on this worker
    keeps the lock for it: the realtime tests then run as one block, and the other workers
    drain their running tests once for the block instead of once per realtime test."""
    global _kept_share
    basetemp = getattr(item.config.option, "basetemp", None)
    if not hasattr(item.config, "workerinput") or not basetemp:
        yield
        return
    realtime = _is_realtime(item)
    share, _kept_share = _kept_share, None
    if share is None or not realtime:
        if share is not None:
            _give_back(share)
        share = _take_machine_share(Path(basetemp).parent, realtime)
    try:
        yield
    finally:
        if realtime and nextitem is not None and _is_realtime(nextitem):
            _kept_share = share
        else:
            _give_back(share)
