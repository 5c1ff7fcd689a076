"""Receiving a 5,000-message backlog in a 50-member group while the UI is open: the longest
event-loop stall (issue 13; the group twin of :mod:`benchmarks.ui_backlog_stall`).

A relay subprocess (the benchmark options, plus message-request quotas lifted: most members
are strangers to each other, as in a real group, and the relay would otherwise hold their
messages to a request's few). In the parent process, 50 real profiles: the two receivers
(``alice-ui``, ``alice-service``), 5 senders (``sender0`` creates the group) and 43 members that
only publish their prekeys and stay offline. Senders and receivers are each other's contacts
(an invitation is accepted from a contact). sender0 creates the group with all 49 (the receivers
are online for that, then go offline); then each sender writes N/5 texts, interleaved, and
waits until the relay stored every upload (one ``send_multi`` per message). Each receiver
then ingests the backlog (5 sender keys and N group messages) in a fresh child process:

- **UI**: the real service and ``make_app``, headless (120x40), the group's conversation
  open (``GroupChatScreen``); ``service.start()`` connects and the relay delivers the
  backlog, which the service decrypts and stores and the group screen shows (reloads, marks
  read, queues read receipts) while it arrives.
- **Baseline**: the same backlog ingested by the service alone.

The stall meter, the child and the table are :mod:`benchmarks.ui_stall`'s (shared with
:mod:`benchmarks.ui_backlog_stall`).
"""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from benchmarks.common import Settings
from benchmarks.ui_stall import (
    AIM_STALL_MS,
    TICK_S,
    OpenView,
    child_main,
    measure_backlog,
    render_stalls,
)

if TYPE_CHECKING:
    from textual.pilot import Pilot

    from messenger_tui.app.service import MessengerService
    from messenger_tui.ui.app import MessengerApp

NAME = "ui_group_backlog_stall"
TITLE = "UI: receiving a 5,000-message backlog in a 50-member group"
MEMBERS = 50
SENDERS = 5
GROUP = "backlog"


# ---------------------------------------------------------------------- child process


def conversation(service: MessengerService, expected: int) -> tuple[Callable[[], bool], OpenView]:
    """The group: every message stored; the open group screen shows the newest."""
    group = service.groups.group(GROUP)
    target = service.store.groups.message_count(group.id) + expected

    def stored() -> bool:
        return service.store.groups.message_count(group.id) >= target

    async def open_view(
        app: MessengerApp, pilot: Pilot[Any]
    ) -> tuple[Callable[[], bool], Callable[[], dict[str, Any]]]:
        from messenger_tui.ui.screens.group_chat import GroupChatScreen

        screen = GroupChatScreen(service, group.id)
        await app.push_screen(screen)
        await pilot.pause()

        def shown() -> bool:
            newest = service.groups.history(GROUP, limit=1)
            return bool(screen.messages and newest) and screen.messages[-1].id == newest[-1].id

        def report() -> dict[str, Any]:
            return {"view_loaded": len(screen.messages)}

        return shown, report

    return stored, open_view


# ---------------------------------------------------------------------- parent


async def _prepare(relay_url: str, workdir: Path, n: int) -> dict[str, Path]:
    """50 profiles, the group, and ``n`` texts from 5 senders stored by the relay while the
    receivers are offline."""
    from messenger_tui.app.profile import create_profile
    from messenger_tui.app.service import MessengerService

    homes = {kind: workdir / f"alice-{kind}" for kind in ("ui", "service")}
    receivers = [
        MessengerService(create_profile(home, f"alice-{kind}", relay_url, None))
        for kind, home in homes.items()
    ]
    senders = [
        MessengerService(create_profile(workdir / f"sender{i}", f"sender{i}", relay_url, None))
        for i in range(SENDERS)
    ]
    others = [
        MessengerService(
            create_profile(workdir / f"member{i:02d}", f"member{i:02d}", relay_url, None)
        )
        for i in range(MEMBERS - SENDERS - len(receivers))
    ]
    everyone = [*receivers, *senders, *others]
    bob = senders[0]
    try:
        talkers = [*receivers, *senders]
        for a in talkers:
            for b in talkers:
                if a is not b:
                    a.add_contact(b.address, b.name)
        for m in others:
            bob.add_contact(m.address, m.name)
        for s in everyone:  # publish prekeys (and the contacts' delivery secrets)
            await s.connect(timeout=30)
        for s in others:
            await s.close()
        for r in receivers:
            await r.start()  # the receivers get the group, then go offline for the backlog
        bob.groups.create(GROUP, [m.name for m in everyone if m is not bob])
        for s in [*receivers, *senders[1:]]:
            deadline = time.monotonic() + 120
            while not any(g.name == GROUP for g in s.groups.all()):
                if time.monotonic() > deadline:
                    raise RuntimeError(f"{s.name} never got the group")
                await asyncio.sleep(0.05)
        for r in receivers:
            await r.close()
        for i in range(n):
            s = senders[i % SENDERS]
            text = f"backlog {i:05d}: " + "the quick brown fox jumps over the lazy dog " * (
                1 + i % 3
            )
            s.groups.send_text(GROUP, text[: 40 + (i * 37) % 120])
            if i % 200 == 199:
                await asyncio.sleep(0)  # let the group outboxes upload as they go
        for s in senders:
            # the relay stores ~10 group messages/s here (49 references each, fsynced)
            if not await s.groups.wait_sent(max(300.0, n * 0.3)):
                raise RuntimeError(f"{s.name}'s group outbox did not drain")
    finally:
        for s in everyone:
            await s.close()
            s.profile.close()
    return homes


def run(settings: Settings) -> dict[str, Any]:
    n = 1000 if settings.quick else 5000
    workdir = settings.workdir / NAME
    out: dict[str, Any] = {
        "aim_stall_ms": AIM_STALL_MS,
        "messages": n,
        "members": MEMBERS,
        "senders": SENDERS,
    }
    return measure_backlog(NAME, workdir, _prepare, n, 900, out)


def render(result: dict[str, Any]) -> str:
    return render_stalls(
        result,
        "UI open on the group (make_app + service)",
        f"A {result['members']}-member group; {result['senders']} senders wrote the "
        f"backlog while the receiver was offline; the relay delivers it when the receiver "
        f"connects; ingest = service.start() -> every group message stored (and shown by "
        f"the open group screen). Stall = lateness of a {TICK_S * 1000:.0f} ms asyncio "
        f"ticker. Aim: no stall over {result['aim_stall_ms']:.0f} ms (as for 1:1, "
        f"`ui_backlog_stall`).",
    )


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "child":
        sys.exit(child_main(NAME, sys.argv[2:], conversation))
    print(f"run it through the runner: python -m benchmarks.run {NAME}")
    sys.exit(2)
