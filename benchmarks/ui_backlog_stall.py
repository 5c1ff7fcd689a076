"""Receiving a 5,000-message backlog while the UI is open: the longest event-loop stall.

A relay subprocess (the same options as the other benchmarks). In the parent process, the
receivers (``alice-ui``, ``alice-service``) connect once to publish their prekeys and go
offline; ``bob`` (a real ``MessengerService``) then sends N texts to each and waits until the
relay has stored them all. Each receiver then ingests its backlog in a fresh child process:

- **UI**: the real service and ``make_app``, headless (``App.run_test``, 120x40), bob's
  conversation open on the main screen; then ``service.start()`` connects, and the relay
  delivers the backlog, which the service decrypts and stores and the main screen shows
  (list, view, read receipts) while it arrives.
- **Baseline**: the same backlog ingested by the service alone (no UI) in the same way.

The stall meter, the child and the table are :mod:`benchmarks.ui_stall`'s (shared with the
group twin, :mod:`benchmarks.ui_group_backlog_stall`).
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from benchmarks.common import Settings
from benchmarks.ui_stall import (
    AIM_STALL_MS,
    TICK_S,
    OpenView,
    StallMeter,
    child_main,
    measure_backlog,
)
from benchmarks.ui_stall import render_stalls as _render_stalls

if TYPE_CHECKING:
    from textual.pilot import Pilot

    from messenger_tui.app.service import MessengerService
    from messenger_tui.ui.app import MessengerApp

NAME = "ui_backlog_stall"
TITLE = "UI: receiving a 5,000-message backlog"
PEER = "bob"
__all__ = ["PEER", "TICK_S", "StallMeter"]  # sqlcipher_cost measures with the same meter


# ---------------------------------------------------------------------- child process


def conversation(service: MessengerService, expected: int) -> tuple[Callable[[], bool], OpenView]:
    """Bob's conversation: every message stored; the view shows the newest."""
    bob_id = service.contact(PEER).id
    target = service.store.messages.count(bob_id) + expected

    def stored() -> bool:
        return service.store.messages.count(bob_id) >= target

    async def open_view(
        app: MessengerApp, pilot: Pilot[Any]
    ) -> tuple[Callable[[], bool], Callable[[], dict[str, Any]]]:
        screen = app.main_screen
        assert screen is not None
        await screen.open_conversation(bob_id)
        await pilot.pause()
        view = screen.view

        def shown() -> bool:
            msgs = view.messages
            return (
                bool(msgs)
                and msgs[-1].id == service.history(service.contact(PEER).id, limit=1)[-1].id
            )

        def report() -> dict[str, Any]:
            return {
                "view_loaded": len(view.messages),
                "unread_marker": view.unread_marker is not None,
            }

        return shown, report

    return stored, open_view


# ---------------------------------------------------------------------- parent


async def _prepare(relay_url: str, workdir: Path, n: int) -> dict[str, Path]:
    """Receivers publish prekeys and go offline; bob sends each ``n`` texts, stored by the
    relay."""
    from messenger_tui.app.profile import create_profile
    from messenger_tui.app.service import MessengerService

    homes = {kind: workdir / f"alice-{kind}" for kind in ("ui", "service")}
    receivers = {
        kind: MessengerService(create_profile(home, f"alice-{kind}", relay_url, None))
        for kind, home in homes.items()
    }
    bob = MessengerService(create_profile(workdir / "bob", PEER, relay_url, None))
    try:
        for kind, r in receivers.items():
            r.add_contact(bob.address, PEER)
            bob.add_contact(r.address, f"alice-{kind}")
            await r.connect(timeout=15)
            await r.close()
        await bob.connect(timeout=15)
        for kind in receivers:
            for i in range(n):
                text = f"backlog {i:05d}: " + "the quick brown fox jumps over the lazy dog " * (
                    1 + i % 3
                )
                await bob.send_text(bob.contact(f"alice-{kind}").id, text[: 40 + (i * 37) % 120])
        # ~50 sends/s on a quiet machine; a loaded one (other jobs) takes several times longer
        if not await bob.wait_outbox_empty(max(300.0, n / 10)):
            raise RuntimeError("bob's outbox did not drain")
    finally:
        await bob.close()
        bob.profile.close()
        for r in receivers.values():
            r.profile.close()
    return homes


def run(settings: Settings) -> dict[str, Any]:
    n = 1000 if settings.quick else 5000
    workdir = settings.workdir / NAME
    out: dict[str, Any] = {"aim_stall_ms": AIM_STALL_MS, "messages": n}
    return measure_backlog(NAME, workdir, _prepare, n, 600, out)


def render(result: dict[str, Any]) -> str:
    return _render_stalls(
        result,
        "UI open on the conversation (make_app + service)",
        f"Backlog sent by another client while the receiver was offline, delivered by the "
        f"relay when it connects; ingest = service.start() -> every message stored (and shown "
        f"by the open view). Stall = lateness of a {TICK_S * 1000:.0f} ms asyncio ticker. "
        f"Aim: no stall over {result['aim_stall_ms']:.0f} ms.",
    )


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "child":
        sys.exit(child_main(NAME, sys.argv[2:], conversation))
    print(f"run it through the runner: python -m benchmarks.run {NAME}")
    sys.exit(2)
