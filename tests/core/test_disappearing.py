"""The disappearing-message rules: timer merge (convergence), bounds, expiry times."""

from __future__ import annotations

import itertools
import random

import msgspec
import pytest

from messenger_tui.core import disappearing as dm
from messenger_tui.core import payload as pl

ALICE = b"\x01" * 32
BOB = b"\x02" * 32


class FakeClock:
    def __init__(self, ms: int = 1_000_000) -> None:
        self.ms = ms

    def advance(self, seconds: float) -> None:
        self.ms += int(seconds * 1000)


def test_higher_version_wins_whatever_the_order() -> None:
    a = dm.change(dm.OFF, 300, ALICE)
    b = dm.change(a, 30, BOB)
    assert dm.merge(a, b) == b and dm.merge(b, a) == b
    assert b.version == 2 and b.seconds == 30


def test_concurrent_changes_converge_by_author() -> None:
    # Both change from the same version at once: same version, the higher author key wins on
    # both sides, whichever arrives first.
    base = dm.change(dm.OFF, 60, ALICE)
    by_alice = dm.change(base, 300, ALICE)
    by_bob = dm.change(base, 0, BOB)
    assert by_alice.version == by_bob.version
    alice_view = dm.merge(by_alice, by_bob)
    bob_view = dm.merge(by_bob, by_alice)
    assert alice_view == bob_view == by_bob


def test_merge_is_order_independent_over_many_changes() -> None:
    rng = random.Random(7)
    settings = [dm.OFF]
    authors = [bytes([i]) * 32 for i in range(1, 6)]
    for _ in range(30):
        settings.append(
            dm.change(rng.choice(settings), rng.choice(dm.PRESETS), rng.choice(authors))
        )
    winners = set()
    for _ in range(50):
        order = settings[:]
        rng.shuffle(order)
        state = dm.OFF
        for s in order + order[:5]:  # duplicates too
            state = dm.merge(state, s)
        winners.add(state)
    assert len(winners) == 1


def test_off_with_a_lower_version_does_not_turn_it_off() -> None:
    on = dm.change(dm.change(dm.OFF, 30, ALICE), 300, BOB)
    stale_off = dm.TimerSetting(version=1, author=BOB, seconds=0)
    assert dm.merge(on, stale_off) == on


def test_incoming_bounds() -> None:
    current = dm.change(dm.OFF, 30, ALICE)
    dm.check_incoming(current, dm.TimerSetting(version=2, author=BOB, seconds=60))
    dm.check_incoming(current, dm.OFF)  # a stamp of a never-set timer: allowed, never wins
    with pytest.raises(dm.TimerError, match="out of range"):
        dm.check_incoming(current, dm.TimerSetting(2, BOB, dm.MAX_TIMER_S + 1))
    with pytest.raises(dm.TimerError, match="jumps too far"):
        dm.check_incoming(current, dm.TimerSetting(1 + dm.MAX_VERSION_JUMP + 1, BOB, 60))
    dm.check_incoming(current, dm.TimerSetting(1 + dm.MAX_VERSION_JUMP, BOB, 60))


def test_expiry_starts_at_send_for_the_sender_and_at_read_for_the_recipient() -> None:
    clock = FakeClock()
    sent = clock.ms
    sender_deadline = dm.expires_at_ms(5, sent)
    clock.advance(3)  # delivered, not read for 3 s
    read = clock.ms
    recipient_deadline = dm.expires_at_ms(5, read)
    assert sender_deadline == sent + 5000
    assert recipient_deadline == sent + 8000
    clock.advance(2)
    assert dm.is_expired(sender_deadline, clock.ms)
    assert not dm.is_expired(recipient_deadline, clock.ms)
    clock.advance(3)
    assert dm.is_expired(recipient_deadline, clock.ms)
    assert dm.expires_at_ms(0, read) is None and dm.expires_at_ms(None, read) is None
    assert not dm.is_expired(None, clock.ms)


def test_next_wakeup_is_one_delay_for_the_earliest_deadline() -> None:
    clock = FakeClock()
    assert dm.next_wakeup(None, clock.ms) is None
    assert dm.next_wakeup(clock.ms + 2500, clock.ms) == 2.5
    assert dm.next_wakeup(clock.ms - 10, clock.ms) == 0.0


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("off", 0), ("0", 0), ("30s", 30), ("5m", 300), ("1h", 3600), ("1d", 86400),
     ("1w", 604800), ("5", 5), (" 2M ", 120)],
)  # fmt: skip
def test_parse_duration(text: str, seconds: int) -> None:
    assert dm.parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "soon", "-5", "5x", "1.5h", "5 m", "5w"])
def test_parse_duration_refuses(text: str) -> None:
    with pytest.raises(dm.TimerError):
        dm.parse_duration(text)


def test_describe() -> None:
    assert [dm.describe(s) for s in dm.PRESETS] == [
        "off", "30 s", "5 min", "1 h", "1 day", "1 week"
    ]  # fmt: skip
    assert dm.describe(5) == "5 s" and dm.describe(172800) == "2 days"


def test_text_without_a_timer_field_decodes_as_no_statement() -> None:
    # A client that predates the field (or omits it) says nothing: None, never "off".
    old = msgspec.msgpack.encode({"t": "text", "id": b"i" * 16, "text": "hi", "sent_at_ms": 1})
    decoded = pl.decode_payload(old)
    assert isinstance(decoded, pl.Text) and decoded.timer is None


def test_timer_payload_round_trip_and_bounds() -> None:
    data = pl.encode_payload(pl.Timer(seconds=300, version=4))
    assert pl.decode_payload(data) == pl.Timer(seconds=300, version=4)
    for bad in ({"seconds": -1, "version": 1}, {"seconds": 5, "version": 0}):
        with pytest.raises(pl.MalformedPayload):
            pl.decode_payload(msgspec.msgpack.encode({"t": "timer", **bad}))
    stamped = pl.Text(id=b"i" * 16, text="x", sent_at_ms=1, timer=pl.TimerStamp(5, 2, ALICE))
    assert pl.decode_payload(pl.encode_payload(stamped)) == stamped


def test_presets_are_in_range() -> None:
    for a, b in itertools.pairwise(dm.PRESETS):
        assert a < b <= dm.MAX_TIMER_S
