"""``messenger-tui call GROUP`` and ``answer`` for group calls, without the UI.

``call GROUP`` starts the group's call (ringing its members) or joins it when it rings or is in
progress; ``answer`` joins the first group call that rings (or a 1:1 call, see call_cmd.py).
With ``--play`` / ``--record`` each participant plays its own WAV file into the call and
records the mix it hears. Progress goes to stderr, one line per change: "in the group call
in team with bob, carol", and when leaving one line per participant heard::

    heard bob: 312 frames, voice 250 of 250, loss 0.00 %, buffer 60 ms

(loss while the relay forwarded it: see media/group_receive.py). ``--wait-for N`` holds the
``--play`` file until N other participants are in the call (so several headless
participants start talking together); ``--duration`` counts from then.

Exit codes: 0 the call took place and we left; 12 the join failed or the call ended before we
were in it; 13 the connection was lost during the call.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from messenger_tui.app import events as ev
from messenger_tui.app.group_models import GroupCallParticipant, GroupCallView
from messenger_tui.app.service import MessengerService
from messenger_tui.cli.output import err

#: Not joined: the join failed or the call ended first.
EXIT_GROUP_CALL_FAILED = 12
#: In the call, then its connection was lost.
EXIT_GROUP_CALL_LOST = 13


def is_group_call(service: MessengerService, name: str) -> bool:
    """``name`` names a group and no contact (a contact of that name wins)."""
    if any(c.name == name for c in service.contacts()):
        return False
    return any(g.name == name for g in service.groups.all())


def describe(call: GroupCallView) -> str:
    """One progress line."""
    if call.state == "ringing":
        return f"a group call rings in {call.group_name}"
    if call.state == "in_progress":
        return f"call in progress in {call.group_name}, join"
    if call.state == "joining":
        return f"joining the group call in {call.group_name}…"
    if call.state == "rejoining":
        return f"connection lost, rejoining the group call in {call.group_name}…"
    if call.state == "in_call":
        names = ", ".join(p.name for p in call.participants) or "nobody else yet"
        return f"in the group call in {call.group_name} with {names}"
    if call.state == "ended":
        return f"left the group call in {call.group_name}" + (
            f" ({call.problem})" if call.problem else ""
        )
    return call.state


def heard_lines(participants: list[GroupCallParticipant]) -> list[str]:
    """One line per participant: what we heard of them."""
    return [
        f"heard {p.name}: {p.frames_received} frames, voice {p.voice_frames_received} of "
        f"{p.voice_frames_expected}, loss {p.loss_percent:.2f} %, buffer {p.delay_ms:.0f} ms"
        for p in participants
    ]


async def follow_group_call(
    service: MessengerService,
    queue: asyncio.Queue[ev.Event],
    group_name: str,
    *,
    talk_s: float | None,
    wait_for: int,
    on_talking: Callable[[], None],
) -> int:
    """Report the group call's progress until we leave it; ``on_talking()`` once we are in
    the call with ``wait_for`` others; leave ``talk_s`` later. Returns the exit code."""
    loop = asyncio.get_running_loop()
    leave_at: float | None = None
    last: str | None = None
    talking = False
    was_in = False
    # the last health of everyone in the call since we joined (leavers included)
    seen: dict[bytes, GroupCallParticipant] = {}
    while True:
        timeout = None if leave_at is None else max(0.0, leave_at - loop.time())
        try:
            event = await asyncio.wait_for(queue.get(), timeout)
        except TimeoutError:
            view = service.group_calls.active()
            for participant in view.participants if view else ():
                seen[participant.identity] = participant
            for line in heard_lines(list(seen.values())):
                err(line)
            service.group_calls.leave()
            leave_at = None
            continue
        if not isinstance(event, ev.GroupCallChanged) or event.call.group_name != group_name:
            continue
        call = event.call
        for participant in call.participants:
            seen[participant.identity] = participant
        line = describe(call)
        if line != last:
            err(line)
            last = line
        if call.state == "in_call":
            was_in = True
            if not talking and len(call.participants) >= wait_for:
                talking = True
                on_talking()
                leave_at = None if talk_s is None else loop.time() + talk_s
        elif call.state in ("ended", "in_progress") and (was_in or call.state == "ended"):
            # in_progress: we left a call the others are still in (it stays joinable)
            if not was_in:
                return EXIT_GROUP_CALL_FAILED
            return EXIT_GROUP_CALL_LOST if call.problem else 0
