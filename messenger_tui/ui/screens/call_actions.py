"""The main screen's call actions: place, answer, mute, hang up, and showing a call's changes
(the call pane, the ringing dialog).

Before a call starts (placed or answered) the audio devices are looked for again, off the
event loop: PortAudio lists devices only when it initialises, so a sound server started after
the app (as the app's own hint suggests) would otherwise stay unseen until a restart. The
service skips the re-scan while a device is open."""

from __future__ import annotations

from typing import TYPE_CHECKING

from messenger_tui.app.errors import AppError
from messenger_tui.app.models import CallView
from messenger_tui.ui.screens.incoming_call import IncomingCallScreen
from messenger_tui.ui.talk_keys import talk_keys_of
from messenger_tui.ui.widgets.call_pane import CallPane

if TYPE_CHECKING:
    from messenger_tui.ui.screens.main import MainScreen


def call_changed(screen: MainScreen, call: CallView) -> None:
    pane = screen.query_one(CallPane)
    talk = talk_keys_of(screen.app)
    if talk is not None:
        pane.talk_notes = talk.notes
        talk.call_changed(call.call_id, call.live, call.talking)
    pane.show_call(call)
    screen.refresh_bindings()
    # The ringing dialog may sit under help or the command palette: look in the stack.
    app = screen.app
    ringing = next((s for s in app.screen_stack if isinstance(s, IncomingCallScreen)), None)
    if ringing is not None:
        ringing.call_changed(call)
    elif call.state == "incoming_ringing":

        async def answered(choice: str | None) -> None:
            await incoming_answered(screen, choice)

        app.push_screen(IncomingCallScreen(call), answered)


async def incoming_answered(screen: MainScreen, choice: str | None) -> None:
    service = screen.service
    try:
        if choice == "accept":
            await service.audio_devices(rescan=True)
            service.accept_call()
            call = service.current_call()
            if call is not None and call.contact is not None:
                await screen.open_conversation(call.contact.id, focus_composer=False)
        elif choice == "decline":
            service.decline_call()
    except AppError as exc:
        screen.app.notify(str(exc), severity="warning")


async def place_call(screen: MainScreen) -> None:
    contact = screen.current
    if contact is None:
        screen.app.notify("Open a conversation to call its contact.", severity="warning")
        return
    service = screen.service
    await service.audio_devices(rescan=True)
    try:
        service.place_call(contact.id)
    except AppError as exc:
        # Nothing rang: the reason (no microphone, not connected, blocked...) and its fix.
        screen.app.notify(str(exc), severity="error", timeout=10)


def talk(screen: MainScreen) -> None:
    """The talk key (toggle mode, or hold-to-talk's fallback; hold-to-talk itself pairs the
    driver's press and release, ui/talk_keys.py)."""
    keys = talk_keys_of(screen.app)
    if keys is not None:
        keys.action()


def toggle_mic_mute(screen: MainScreen) -> None:
    call = screen.service.current_call()
    if call is not None and call.live:
        screen.service.set_call_muted(not call.muted)
