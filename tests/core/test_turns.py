"""OncePerTurn: a burst of requests in one turn is one call, after the turn."""

from __future__ import annotations

from collections.abc import Callable


class FakeLoop:
    def __init__(self) -> None:
        self.ready: list[Callable[[], object]] = []

    def call_soon(self, callback: Callable[[], object], /) -> object:
        self.ready.append(callback)
        return None

    def run_turn(self) -> None:
        ready, self.ready = self.ready, []
        for callback in ready:
            callback()


def test_a_burst_is_one_call_and_a_later_request_schedules_again() -> None:
    from messenger_tui.core.turns import OncePerTurn

    loop = FakeLoop()
    calls: list[int] = []
    soon = OncePerTurn(lambda: calls.append(len(calls)), lambda: loop)

    def pending() -> bool:  # read afresh each time (an attribute read would stay narrowed)
        return soon.pending

    for _ in range(1000):
        soon.request()
    assert calls == [] and pending() and len(loop.ready) == 1
    loop.run_turn()
    assert calls == [0] and not pending()
    soon.request()
    loop.run_turn()
    assert calls == [0, 1]
    loop.run_turn()
    assert calls == [0, 1]  # nothing requested: nothing runs
