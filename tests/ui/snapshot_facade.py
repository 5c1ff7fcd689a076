"""A deterministic, in-memory :class:`~messenger_tui.app.facade.MessengerFacade` for the
snapshot tests: fixed identities, names, timestamps and states, no I/O, no randomness.

The Pilot tests run the real service; the snapshot tests only check what the UI draws, so a
fake that hands out fixed data is enough, and it makes every screenshot reproducible. Build a
scene with :class:`SnapshotFacade` and its ``new_contact`` / ``new_message`` helpers (or take one of
the ready scenes below); :data:`FROZEN_NOW` is the wall-clock time the tests freeze the UI at
(``messenger_tui.ui.formatting.wall_clock``), with the time zone set to UTC.

To extend it (e.g. for a settings screen), subclass :class:`SnapshotFacade` or add the new
facade methods here with fixed return values.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import io
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, NoReturn

from messenger_tui.app import events as ev
from messenger_tui.app.errors import AudioProblem, BadInput
from messenger_tui.app.facade import ConversationSummary, SearchHit
from messenger_tui.app.group_models import (
    Group,
    GroupCallView,
    GroupMember,
    GroupMessage,
    GroupSearchHit,
)
from messenger_tui.app.images import CellRow, halfblock_cells
from messenger_tui.app.models import (
    AudioDevices,
    CallStats,
    CallView,
    Contact,
    ContactId,
    Message,
    Settings,
    TransferView,
)
from messenger_tui.core.message_states import MessageState

#: The wall-clock time every snapshot is taken at: Friday 14 March 2025, 12:00 (UTC).
FROZEN_NOW = datetime(2025, 3, 14, 12, 0)


def ms_at(days_ago: int, hour: int, minute: int) -> int:
    """Epoch milliseconds of ``hour:minute`` (UTC) ``days_ago`` days before FROZEN_NOW."""
    day = FROZEN_NOW.date() - timedelta(days=days_ago)
    when = datetime(day.year, day.month, day.day, hour, minute, tzinfo=UTC)
    return int(when.timestamp() * 1000)


def fixed_identity(label: str) -> bytes:
    """A 32-byte identity key derived from ``label`` (the same on every run)."""
    return hashlib.sha256(f"snapshot identity {label}".encode()).digest()


def fixed_digits(label: str) -> str:
    """60 decimal digits derived from ``label``."""
    digest = hashlib.sha512(f"safety {label}".encode()).digest()
    return "".join(str(b % 10) for b in digest[:60])


@dataclass(frozen=True)
class FixedSafetyNumber:
    contact: Contact
    digits: str

    @property
    def formatted(self) -> str:
        return " ".join(self.digits[i : i + 5] for i in range(0, len(self.digits), 5))

    @property
    def qr_payload(self) -> bytes:
        """61 fixed bytes (the safety QR code's size: version + two fingerprints)."""
        return b"\x01" + hashlib.sha512(f"qr {self.digits}".encode()).digest()[:60]


@dataclass
class FixedProfile:
    relay_url: str = "ws://127.0.0.1:8765"
    name: str = "Alice"

    def close(self) -> None:
        pass


#: The devices the snapshot facade reports (PortAudio-like names, fixed).
FIXED_DEVICES = AudioDevices(
    inputs=("HDA Intel PCH: ALC892 Analog (hw:0,0)", "USB Headset: Audio (hw:1,0)", "pulse",
            "default"),
    outputs=("HDA Intel PCH: ALC892 Analog (hw:0,0)", "HDA Intel PCH: HDMI 0 (hw:0,3)",
             "USB Headset: Audio (hw:1,0)", "pulse", "default"),
)  # fmt: skip


@dataclass
class FixedMicTest:
    """A mic test that reported its levels at once (the facade's ``mic_levels``)."""

    device: str | None
    stopped: bool = False

    def stop(self) -> None:
        self.stopped = True


@dataclass
class FixedGroups:
    """Fixed groups (none unless a scene adds them: :func:`group_scene`)."""

    groups: list[Group] = field(default_factory=list)
    messages: dict[int, list[GroupMessage]] = field(default_factory=dict)
    timers: dict[str, int] = field(default_factory=dict)

    def all(self) -> list[Group]:
        return list(self.groups)

    def by_id(self, row_id: int) -> Group | None:
        return next((g for g in self.groups if g.id == row_id), None)

    def history(self, name: str, *, limit: int = 50) -> list[GroupMessage]:
        group = next((g for g in self.groups if g.name == name), None)
        return self.messages.get(group.id, [])[-limit:] if group is not None else []

    def send_text(self, name: str, text: str, mentions: list[bytes] | None = None) -> GroupMessage:
        raise BadInput(f"no group called {name!r}")

    def mark_read(self, name: str) -> int:
        return 0

    def _fixed(self, name: str) -> Group:
        raise BadInput("the snapshot facade's groups do not change")

    def create(self, name: str, member_names: list[str]) -> Group:
        return self._fixed(name)

    def add(self, name: str, member_names: list[str]) -> Group:
        return self._fixed(name)

    def remove(self, name: str, member_names: list[str]) -> Group:
        return self._fixed(name)

    def set_admin(self, name: str, member_names: list[str], admin: bool) -> Group:
        return self._fixed(name)

    def leave(self, name: str) -> Group:
        return self._fixed(name)

    def rename(self, name: str, new_name: str) -> Group:
        return self._fixed(name)

    def set_muted(self, name: str, muted: bool) -> Group:
        return self._fixed(name)

    def receipts(self, message: GroupMessage) -> list[tuple[str, str]]:
        group = self.by_id(message.group_row)
        members = [m.name for m in group.members if not m.me] if group else []
        states = ["read"] * message.read + ["delivered"] * (message.delivered - message.read)
        return [(n, states[i] if i < len(states) else "waiting") for i, n in enumerate(members)]

    async def send_typing(self, name: str, active: bool) -> None:
        return None

    def timer(self, name: str) -> int:
        return self.timers.get(name, 0)

    def search_hits(
        self, text: str, *, name: str | None = None, limit: int = 100
    ) -> list[GroupSearchHit]:
        return []

    def set_timer(self, name: str, seconds: int) -> bool:
        changed = self.timers.get(name, 0) != seconds
        self.timers[name] = seconds
        return changed


@dataclass
class FixedGroupCalls:
    """Fixed group calls (none unless a scene adds them), by group name."""

    views: dict[str, GroupCallView] = field(default_factory=dict)

    def view(self, name: str) -> GroupCallView | None:
        return self.views.get(name)

    def active(self) -> GroupCallView | None:
        return next((v for v in self.views.values() if v.state in ("joining", "in_call")), None)

    def calls(self) -> list[GroupCallView]:
        return [v for v in self.views.values() if v.state not in ("idle", "ended")]

    def start_or_join(self, name: str) -> GroupCallView:
        view = self.views.get(name)
        if view is None:
            raise BadInput("the snapshot facade starts no group calls")
        return view

    def decline(self, name: str) -> None:
        raise BadInput("the snapshot facade's group calls do not change")

    def leave(self) -> None:
        return None

    def set_muted(self, muted: bool) -> None:
        return None


@dataclass
class FixedRecording:
    level: float = 0.25
    elapsed_ms: int = 4_000
    at_limit: bool = False


@dataclass
class FixedPlayer:
    message_row: int
    duration_ms: int
    position_ms: int = 3_000
    playing: bool = True
    ended: bool = False
    speed: float = 1.0


@dataclass
class FixedVoice:
    """Voice messages without devices: a recording that stays at 0:04 and a player that
    stands at 0:03 of the message (play toggles it, seek moves it 5 s)."""

    facade: SnapshotFacade
    recording: FixedRecording | None = None
    player: FixedPlayer | None = None
    recorded_for: list[ContactId | str] = field(default_factory=list)

    async def record(self, contact_id: ContactId) -> FixedRecording:
        return self._record(contact_id)

    async def record_for_group(self, name: str) -> FixedRecording:
        return self._record(name)

    def _record(self, target: ContactId | str) -> FixedRecording:
        if self.recording is not None:
            raise BadInput("a voice message is already being recorded")
        self.recorded_for.append(target)
        self.recording = FixedRecording()
        return self.recording

    async def send(self) -> TransferView:
        self.recording = None
        raise BadInput("the snapshot facade sends no voice messages")

    async def cancel(self) -> None:
        self.recording = None

    async def play(self, message_row: int) -> FixedPlayer:
        if self.player is not None and self.player.message_row == message_row:
            self.player.playing = not self.player.playing
            return self.player
        view = self.facade.transfer_for_message(message_row)
        if view is None or view.duration_ms is None:
            raise BadInput("that message is not a voice message")
        self.player = FixedPlayer(message_row, view.duration_ms)
        return self.player

    def seek(self, forward: bool) -> None:
        if self.player is not None:
            step = 5_000 if forward else -5_000
            self.player.position_ms = max(
                0, min(self.player.duration_ms, self.player.position_ms + step)
            )

    def next_speed(self) -> float:
        if self.player is None:
            return 1.0
        speeds = (1.0, 1.5, 2.0)
        self.player.speed = speeds[(speeds.index(self.player.speed) + 1) % 3]
        return self.player.speed

    async def stop_playing(self) -> None:
        self.player = None


@dataclass
class FixedGroupFiles:
    """Group files: the snapshot facade sends none."""

    async def send_file(self, name: str, path: str | Path) -> TransferView:
        raise BadInput("the snapshot facade sends no files")


@dataclass
class SnapshotFacade:
    """The facade over fixed data. ``online``: contact ids announced online at start;
    ``connection``: the state announced at start."""

    own_name: str = "Alice"
    connection: str = "connected"
    contact_list: list[Contact] = field(default_factory=list)
    messages: dict[int, list[Message]] = field(default_factory=dict)
    online: set[int] = field(default_factory=set)
    profile: FixedProfile = field(default_factory=FixedProfile)
    current_settings: Settings = field(
        default_factory=lambda: Settings(relay_url=FixedProfile.relay_url)
    )
    started: bool = False
    #: The current (or last) call and its statistics; set them with show_call / show_stats.
    call: CallView | None = None
    stats: CallStats | None = None
    #: What audio_devices reports; start_mic_test reports ``mic_levels`` at once (or raises
    #: AudioProblem with the devices' problem).
    devices: AudioDevices = FIXED_DEVICES
    mic_levels: tuple[float, ...] = (0.05, 0.3)
    mic_tests: list[FixedMicTest] = field(default_factory=list)
    fixed_groups: FixedGroups = field(default_factory=FixedGroups)
    fixed_group_calls: FixedGroupCalls = field(default_factory=FixedGroupCalls)
    transfer_list: list[TransferView] = field(default_factory=list)
    #: Disappearing-message timers by contact id (seconds; absent: off).
    timers: dict[int, int] = field(default_factory=dict)
    voice: FixedVoice = field(init=False)
    image_list: dict[int, bytes] = field(default_factory=dict)
    #: Transfers open_file was asked to open.
    opened: list[int] = field(default_factory=list)
    _subscribers: list[asyncio.Queue[ev.Event]] = field(default_factory=list)
    _next_row: int = 1

    def __post_init__(self) -> None:
        self.voice = FixedVoice(self)

    # ------------------------------------------------------------------ building a scene

    def new_contact(
        self,
        name: str,
        *,
        verified: bool = False,
        key_changed: bool = False,
        auto_added: bool = False,
        online: bool = False,
    ) -> Contact:
        c = Contact(
            id=ContactId(len(self.contact_list) + 1),
            name=name,
            identity=fixed_identity(name),
            verified=verified,
            key_changed=key_changed,
            blocked=False,
            auto_added=auto_added,
        )
        self.contact_list.append(c)
        self.messages[c.id] = []
        if online:
            self.online.add(c.id)
        return c

    def new_message(
        self,
        contact: Contact,
        when_ms: int,
        text: str,
        *,
        outgoing: bool,
        state: MessageState | None = None,
        kind: str = "text",
    ) -> Message:
        """Add a message (in display order: call oldest first). ``state`` defaults to
        "read" for own messages and "seen" for theirs ("received" = unread)."""
        state = state or ("read" if outgoing else "seen")
        row = self._next_row
        self._next_row += 1
        m = Message(
            id=row,
            message_id=row.to_bytes(16, "big"),
            contact_id=contact.id,
            outgoing=outgoing,
            kind=kind,
            text=text,
            sent_at_ms=when_ms,
            received_at_ms=None if outgoing else when_ms + 1500,
            state=state,
        )
        self.messages[contact.id].append(m)
        return m

    # ------------------------------------------------------------------ MessengerFacade

    @property
    def groups(self) -> FixedGroups:
        return self.fixed_groups

    @property
    def group_files(self) -> FixedGroupFiles:
        return FixedGroupFiles()

    @property
    def group_calls(self) -> FixedGroupCalls:
        return self.fixed_group_calls

    @property
    def address(self) -> str:
        me = fixed_identity(self.own_name)
        return Contact(ContactId(0), self.own_name, me, False, False, False, False).address

    @property
    def name(self) -> str:
        return self.own_name

    @property
    def connected(self) -> bool:
        return self.connection == "connected"

    @property
    def connection_state(self) -> str:
        return self.connection if self.started else "offline"

    def reconnect_now(self) -> bool:
        return False

    async def start(self) -> None:
        """Announce the connection and the presence of the online contacts (as the real
        service does after connecting), in a fixed order."""
        self.started = True
        self._emit(ev.ConnectionChanged(self.connection))
        for c in self.contact_list:
            if c.id in self.online:
                self._emit(ev.PresenceChanged(c, True))

    async def close(self) -> None:
        self.started = False

    def subscribe(self) -> asyncio.Queue[ev.Event]:
        queue: asyncio.Queue[ev.Event] = asyncio.Queue()
        self._subscribers.append(queue)
        return queue

    def unsubscribe(self, queue: asyncio.Queue[ev.Event]) -> None:
        if queue in self._subscribers:
            self._subscribers.remove(queue)

    def _emit(self, event: ev.Event) -> None:
        for queue in self._subscribers:
            queue.put_nowait(event)

    def contacts(self) -> list[Contact]:
        return list(self.contact_list)

    def contact(self, contact_id: ContactId) -> Contact:
        """The contact with this id (the facade's key; not part of the protocol)."""
        for c in self.contact_list:
            if c.id == contact_id:
                return c
        raise BadInput("that contact no longer exists")

    def named(self, name: str) -> Contact:
        """A scene's contact by name (scenes set up by name; the facade takes ids)."""
        for c in self.contact_list:
            if c.name == name:
                return c
        raise BadInput(f"no contact named {name}")

    def contact_by_id(self, contact_id: int) -> Contact | None:
        return next((c for c in self.contact_list if c.id == contact_id), None)

    def add_contact(self, address: str, name: str) -> Contact:
        raise BadInput("the snapshot facade does not add contacts")

    def safety_number(self, contact_id: ContactId) -> FixedSafetyNumber:
        c = self.contact(contact_id)
        return FixedSafetyNumber(c, fixed_digits(f"{self.own_name}/{c.name}"))

    def accept_key(self, contact_id: ContactId) -> Contact:
        return self.contact(contact_id)

    async def watch_presence(self) -> None:
        pass

    def conversations(self) -> list[ConversationSummary]:
        out = [self._summary(c) for c in self.contact_list]
        return sorted(out, key=lambda s: s.activity_key, reverse=True)

    def conversation(self, contact_id: int) -> ConversationSummary | None:
        c = self.contact_by_id(contact_id)
        return self._summary(c) if c is not None else None

    def _summary(self, c: Contact) -> ConversationSummary:
        msgs = self.messages[c.id]
        unread = sum(1 for m in msgs if not m.outgoing and m.state == "received")
        return ConversationSummary(c, msgs[-1] if msgs else None, unread)

    def history(
        self, contact_id: ContactId, *, limit: int = 50, before_id: int | None = None
    ) -> list[Message]:
        msgs = self.messages[self.contact(contact_id).id]
        if before_id is not None:
            msgs = [m for m in msgs if m.id < before_id]
        return list(msgs[-limit:])

    def outbox_count(self) -> int:
        return sum(1 for ms in self.messages.values() for m in ms if m.state == "queued")

    async def send_text(self, contact_id: ContactId, text: str) -> Message:
        c = self.contact(contact_id)
        return self.new_message(c, ms_at(0, 12, 0), text, outgoing=True, state="queued")

    async def mark_read(self, contact_id: ContactId) -> int:
        """Marks their unread messages seen, as the real service does (the view keeps its
        "new messages" line; the list's unread badge goes)."""
        c = self.contact(contact_id)
        msgs = self.messages[c.id]
        marked = 0
        for i, m in enumerate(msgs):
            if not m.outgoing and m.state == "received":
                msgs[i] = dataclasses.replace(m, state="seen")
                marked += 1
        return marked

    async def send_typing(self, contact_id: ContactId, active: bool) -> None:
        pass

    def disappearing_timer(self, contact_id: ContactId) -> int:
        return self.timers.get(self.contact(contact_id).id, 0)

    def set_disappearing_timer(self, contact_id: ContactId, seconds: int) -> int:
        self.timers[self.contact(contact_id).id] = seconds
        return seconds

    def history_after(
        self, contact_id: ContactId, after_id: int, *, limit: int = 50
    ) -> list[Message]:
        msgs = [m for m in self.messages[self.contact(contact_id).id] if m.id > after_id]
        return msgs[:limit]

    def history_around(
        self, contact_id: ContactId, message_id: int, *, limit: int = 50
    ) -> list[Message]:
        msgs = self.messages[self.contact(contact_id).id]
        at = next((i for i, m in enumerate(msgs) if m.id == message_id), len(msgs))
        start = max(0, at - limit // 2)
        return msgs[start : start + limit]

    def search(
        self, text: str, *, contact_id: ContactId | None = None, limit: int = 100
    ) -> list[SearchHit]:
        return []

    # contacts management and calls: not part of any snapshot yet (fixed, inert answers)

    def rename_contact(self, contact_id: ContactId, new_name: str) -> Contact:
        c = self.contact(contact_id)
        updated = dataclasses.replace(c, name=new_name)
        self.contact_list[self.contact_list.index(c)] = updated
        return updated

    def set_blocked(self, contact_id: ContactId, blocked: bool) -> Contact:
        c = self.contact(contact_id)
        updated = dataclasses.replace(c, blocked=blocked)
        self.contact_list[self.contact_list.index(c)] = updated
        return updated

    def delete_contact(self, contact_id: ContactId) -> None:
        self.contact_list.remove(self.contact(contact_id))

    # calls: a scene sets the call and its statistics (and announces them as the service
    # does, with CallChanged / CallStatsChanged events)

    def show_call(self, call: CallView) -> None:
        self.call = call
        self._emit(ev.CallChanged(call))

    def show_stats(self, stats: CallStats) -> None:
        self.stats = stats
        self._emit(ev.CallStatsChanged(stats))

    def place_call(self, contact_id: ContactId) -> NoReturn:
        raise BadInput("the snapshot facade does not place calls")

    def accept_call(self) -> None:
        pass

    def decline_call(self) -> None:
        pass

    def hang_up(self) -> None:
        pass

    def set_call_muted(self, muted: bool) -> None:
        if self.call is not None:
            self.show_call(dataclasses.replace(self.call, muted=muted))

    def set_call_talking(self, talking: bool) -> None:
        if self.call is not None:
            self.show_call(dataclasses.replace(self.call, talking=talking))

    def current_call(self) -> CallView | None:
        return self.call

    def call_stats(self) -> CallStats | None:
        return self.stats

    async def audio_devices(self, *, rescan: bool = False) -> AudioDevices:
        return self.devices

    async def start_mic_test(
        self, device: str | None, on_level: Callable[[float], None]
    ) -> FixedMicTest:
        if not self.devices.inputs:
            raise AudioProblem(self.devices.problem or "no microphone", self.devices.fix)
        test = FixedMicTest(device or "default")
        self.mic_tests.append(test)
        for level in self.mic_levels:
            on_level(level)
        return test

    # settings and mute (the settings screen; fixed values, changes kept in memory)

    def settings(self) -> Settings:
        return self.current_settings

    def update_settings(self, **changes: bool | str | int) -> Settings:
        fields: dict[str, Any] = dict(changes)  # names checked by replace() at run time
        self.current_settings = dataclasses.replace(self.current_settings, **fields)
        return self.current_settings

    async def set_relay_url(self, url: str) -> Settings:
        return self.update_settings(relay_url=url)

    async def change_passphrase(self, current: str | None, new: str | None) -> Settings:
        return self.update_settings(passphrase_set=bool(new))

    def set_muted(self, contact_id: ContactId, muted: bool) -> Contact:
        c = self.contact(contact_id)
        updated = dataclasses.replace(c, muted=muted)
        self.contact_list[self.contact_list.index(c)] = updated
        return updated

    # files: a scene lists its transfers in ``transfer_list``
    async def send_file(self, contact_id: ContactId, path: str | Path) -> TransferView:
        raise BadInput("the snapshot facade sends no files")

    def transfers(self) -> list[TransferView]:
        return list(self.transfer_list)

    def cancel_transfer(self, transfer_id: int) -> TransferView:
        raise BadInput("the snapshot facade has no transfers to cancel")

    def retry_transfer(self, transfer_id: int) -> TransferView:
        raise BadInput("the snapshot facade has no transfers to retry")

    def transfer_for_message(self, message_row: int) -> TransferView | None:
        return next((t for t in self.transfer_list if t.message_row == message_row), None)

    def open_file(self, transfer_id: int) -> None:
        """Records the request (no program runs): ``opened`` lists the transfer ids."""
        if not any(t.id == transfer_id and t.status == "done" for t in self.transfer_list):
            raise BadInput("that file is not downloaded yet")
        self.opened.append(transfer_id)

    async def image_preview(
        self, message_row: int, cols: int, rows: int
    ) -> tuple[list[CellRow], bool] | None:
        """A scene's images: ``image_list`` maps a message row to an image file's bytes."""
        data = self.image_list.get(message_row)
        return None if data is None else (halfblock_cells(data, cols, rows), False)

    async def image_picture(
        self, message_row: int, width_px: int, height_px: int
    ) -> tuple[bytes, bool] | None:
        """A scene's images as they are (kitty / sixel are never chosen under Pilot)."""
        data = self.image_list.get(message_row)
        return None if data is None else (data, False)


# ---------------------------------------------------------------------- ready scenes

LONG_LINE = (
    "I went through the whole benchmark table last night and the relay holds up well: with a "
    "thousand pairs it still forwards more than half of what the bare forwarder manages, the "
    "latency stays flat under light load, and memory per idle connection is small. Let's "
    "look at the client side next."
)


def main_scene() -> SnapshotFacade:
    """Four conversations (presence, unread counts, previews, a changed key, one without
    messages) and Bob's conversation over three days: own messages in every delivery state,
    a long line, a link, simple emphasis, and two unread messages at the end."""
    f = SnapshotFacade()
    bob = f.new_contact("Bob", verified=True, online=True)
    carol = f.new_contact("Carol")
    dave = f.new_contact("Dave", key_changed=True, online=True)
    f.new_contact("Erin")  # no messages yet

    f.new_message(dave, ms_at(13, 16, 40), "See you at the conference!", outgoing=False)
    f.new_message(bob, ms_at(2, 9, 14), "Did you see the release notes? "
                  "https://example.org/releases/2025-03?ref=chat", outgoing=False)  # fmt: skip
    f.new_message(bob, ms_at(2, 9, 20), "Reading them now: the *new sync* looks great",
                  outgoing=True)  # fmt: skip
    f.new_message(bob, ms_at(1, 18, 2), LONG_LINE, outgoing=False)
    f.new_message(bob, ms_at(1, 18, 5), "Sounds good, `make bench` tonight then.", outgoing=True)
    f.new_message(carol, ms_at(1, 20, 30), "Are we still on for Saturday?", outgoing=False,
                  state="received")  # fmt: skip
    f.new_message(carol, ms_at(1, 20, 31), "I can bring the board games", outgoing=False,
                  state="received")  # fmt: skip
    f.new_message(bob, ms_at(0, 9, 41), "Morning! Pushed the fix.", outgoing=True, state="read")
    f.new_message(bob, ms_at(0, 9, 45), "Can you review it before lunch?", outgoing=True,
                  state="delivered")  # fmt: skip
    f.new_message(bob, ms_at(0, 10, 2), "This one could not be sent.", outgoing=True,
                  state="error")  # fmt: skip
    f.new_message(bob, ms_at(0, 10, 15), "Running the benchmarks now", outgoing=True,
                  state="sent")  # fmt: skip
    f.new_message(bob, ms_at(0, 10, 16), "Will post the numbers here", outgoing=True,
                  state="queued")  # fmt: skip
    f.new_message(bob, ms_at(0, 11, 30), "Sure, looking now", outgoing=False, state="received")
    f.new_message(bob, ms_at(0, 11, 31), "Left two comments on the PR _before_ lunch",
                  outgoing=False, state="received")  # fmt: skip
    return f


#: A voice message's bars (levels 0..7), as the pointer carries them.
VOICE_WAVE = (1, 3, 5, 7, 6, 4, 2, 1, 0, 2, 5, 7, 7, 5, 3, 1, 0, 1, 4, 6, 5, 3, 2, 1)


def voice_scene() -> SnapshotFacade:
    """Bob's conversation with a voice message from him (0:12, downloaded) between texts."""
    f = SnapshotFacade()
    bob = f.new_contact("Bob", verified=True, online=True)
    f.new_contact("Carol")
    f.new_message(bob, ms_at(0, 9, 41), "Can you tell me how the demo went?", outgoing=True)
    voice = f.new_message(bob, ms_at(0, 9, 50), "[voice 0:12]", outgoing=False)
    f.messages[bob.id][-1] = dataclasses.replace(voice, kind="voice")
    f.transfer_list.append(
        TransferView(
            id=1, contact_id=bob.id, direction="down", status="done", name="voice.ogg",
            mime_type="audio/ogg", size=3_900, done=4_096, total=4_096,
            message_row=voice.id, duration_ms=12_000, waveform=VOICE_WAVE,
        )
    )  # fmt: skip
    f.new_message(bob, ms_at(0, 9, 52), "Listening now", outgoing=True, state="delivered")
    return f


def no_contacts_scene() -> SnapshotFacade:
    """A fresh profile: nobody to talk to yet."""
    return SnapshotFacade()


def no_messages_scene() -> SnapshotFacade:
    """One contact, no message exchanged yet."""
    f = SnapshotFacade()
    f.new_contact("Bob", online=True)
    return f


def key_changed_scene() -> SnapshotFacade:
    """Bob's identity key changed: the list flags him, the safety screen says so."""
    f = SnapshotFacade()
    bob = f.new_contact("Bob", key_changed=True, online=True)
    f.new_message(bob, ms_at(0, 9, 0), "Hi, I reinstalled the app on my new phone.",
                  outgoing=False)  # fmt: skip
    return f


def call_scene(*, muted: bool = False) -> tuple[SnapshotFacade, CallView, CallStats]:
    """The main scene with an active call with Bob (2 min 5 s in, at FROZEN_NOW) and a few
    seconds of statistics: some jitter, a little loss, the health line all ✓ (the call and
    its statistics are announced once the main screen runs: see the snapshot tests)."""
    f = main_scene()
    bob = f.named("Bob")
    now = ms_at(0, 12, 0)
    call = CallView(
        call_id=bytes(range(16)),
        peer=bob.identity,
        contact=bob,
        state="active",
        outgoing=True,
        started_ms=now - 131_000,
        active_ms=now - 125_000,
        ended_ms=None,
        end_reason=None,
        peer_ringing=False,
        muted=muted,
        link="joined",
    )
    stats = CallStats(
        rtt_ms=42.0,
        jitter_ms=6.0,
        loss_percent=1.2,
        peer_loss_percent=0.4,
        late_frames=3,
        buffer_delay_ms=60.0,
        buffer_target_ms=60.0,
        send_kbps=27.0,
        receive_kbps=26.0,
        mic_level=0.0 if muted else 0.18,
        remote_level=0.09,
        frames_sent=6250,
        frames_received=6190,
        dropped_frames=0,
        concealed_frames=41,
        capturing=True,
        sending=True,
        peer_receiving=True,
        peer_playing=True,
        rtt_history=(40.0, 41.0, 44.0, 52.0, 47.0, 43.0, 42.0, 41.0, 42.0, 42.0),
        jitter_history=(3.0, 4.0, 9.0, 12.0, 7.0, 5.0, 6.0, 4.0, 6.0, 6.0),
        loss_history=(0.0, 0.0, 2.0, 5.0, 1.0, 0.0, 0.0, 0.0, 1.0, 1.2),
        delay_history=(40.0, 40.0, 60.0, 80.0, 80.0, 60.0, 60.0, 60.0, 60.0, 60.0),
        bitrate_history=(52.0, 53.0, 53.0, 51.0, 53.0, 53.0, 52.0, 53.0, 53.0, 53.0),
    )
    return f, call, stats


def incoming_call(f: SnapshotFacade, name: str = "Carol") -> CallView:
    """A call from ``name`` ringing here, started 3 s before FROZEN_NOW."""
    c = f.named(name)
    now = ms_at(0, 12, 0)
    return CallView(
        call_id=bytes(range(16, 32)),
        peer=c.identity,
        contact=c,
        state="incoming_ringing",
        outgoing=False,
        started_ms=now - 3000,
        active_ms=None,
        ended_ms=None,
        end_reason=None,
        peer_ringing=False,
        muted=False,
        link="none",
    )


def group_scene() -> SnapshotFacade:
    """The main scene plus a group of four ("Book club") with messages from three members
    (names coloured per member), a notice, and one own message read by two of three."""
    f = main_scene()
    alice = GroupMember(fixed_identity("Alice"), "me", True, None, me=True)
    members = tuple(
        GroupMember(fixed_identity(name), name, False, contact_id)
        for name, contact_id in (("Bob", 1), ("Carol", 2), ("Dave", 3))
    )
    group = Group(
        id=1,
        group_id=bytes(16),
        name="Book club",
        members=(alice, *members),
        is_member=True,
        admin=True,
        unread=1,
    )
    lines = [
        ("me", True, "notice", "You created the group Book club.", 0, 0),
        ("Bob", False, "text", "Which book next month?", 0, 0),
        ("Carol", False, "text", "Something short, please: I am still on the last one", 0, 0),
        ("me", True, "text", "How about The Left Hand of Darkness?", 3, 2),
        ("Dave", False, "text", "Yes!", 0, 0),
        ("Bob", False, "text", "@Alice you pick the day, @Carol the place", 0, 0),
    ]
    messages = []
    for i, (name, outgoing, kind, text, delivered, read) in enumerate(lines):
        messages.append(
            GroupMessage(
                id=100 + i,
                group_row=1,
                message_id=bytes([i]) * 16,
                sender=fixed_identity("Alice" if outgoing else name),
                sender_name=name,
                outgoing=outgoing and kind == "text",
                kind=kind,
                text=text,
                sent_at_ms=ms_at(0, 10, 10 + i),
                received_at_ms=None if outgoing else ms_at(0, 10, 10 + i),
                state="sent" if outgoing else "seen",
                delivered=delivered,
                read=read,
                recipients=3,
            )
        )
    f.fixed_groups = FixedGroups([group], {1: messages})
    return f


def sample_image() -> bytes:
    """A 64 x 48 PNG: a sky-to-sea gradient with a sun (the same pixels on every run)."""
    from PIL import Image, ImageDraw

    image = Image.new("RGB", (64, 48))
    for y in range(48):
        sky = y < 28
        colour = (40 + y * 6, 90 + y * 3, 200) if sky else (10, 60 + (y - 28) * 3, 120)
        for x in range(64):
            image.putpixel((x, y), colour)
    ImageDraw.Draw(image).ellipse((38, 10, 52, 24), fill=(255, 200, 40))
    out = io.BytesIO()
    image.save(out, "PNG")
    return out.getvalue()


def image_scene() -> SnapshotFacade:
    """Bob's conversation ending with a photo he sent (unread): its half-block preview under
    the ``[file]`` line, and an own text after it."""
    f = SnapshotFacade()
    bob = f.new_contact("Bob", verified=True, online=True)
    f.new_message(bob, ms_at(0, 9, 40), "Look where we are!", outgoing=False)
    photo = f.new_message(bob, ms_at(0, 9, 41), "[file] sunset.png", outgoing=False,
                          state="received", kind="attachment")  # fmt: skip
    f.image_list[photo.id] = sample_image()
    f.new_message(bob, ms_at(0, 9, 45), "Wow, enjoy!", outgoing=True, state="delivered")
    return f


def group_media_scene() -> SnapshotFacade:
    """The group scene with, after its texts, a photo from Carol (its half-block preview
    under her line) and a voice message from Bob (0:12, downloaded): the group's media
    in place, as in 1:1."""
    f = group_scene()
    group = f.fixed_groups.groups[0]
    shown = f.fixed_groups.messages[group.id]
    for offset, (name, kind, text) in enumerate(
        (("Carol", "attachment", "[file] sunset.png"), ("Bob", "voice", "[voice 0:12]"))
    ):
        row = 200 + offset
        shown.append(
            GroupMessage(
                id=row,
                group_row=group.id,
                message_id=bytes([0x40 + offset]) * 16,
                sender=fixed_identity(name),
                sender_name=name,
                outgoing=False,
                kind=kind,
                text=text,
                sent_at_ms=ms_at(0, 10, 30 + offset),
                received_at_ms=ms_at(0, 10, 30 + offset),
                state="seen",
                delivered=0,
                read=0,
                recipients=3,
            )
        )
    f.image_list[200] = sample_image()
    f.transfer_list.extend(
        [
            TransferView(
                id=11, contact_id=None, direction="down", status="done", name="sunset.png",
                mime_type="image/png", size=2_301, done=4_096, total=4_096, message_row=200,
                path="/downloads/sunset.png", group_row=group.id,
            ),
            TransferView(
                id=12, contact_id=None, direction="down", status="done", name="voice.ogg",
                mime_type="audio/ogg", size=3_900, done=4_096, total=4_096, message_row=201,
                duration_ms=12_000, waveform=VOICE_WAVE, group_row=group.id,
            ),
        ]
    )  # fmt: skip
    return f
