"""Speaker selection (sans-I/O): top 3 per receiver by level byte, hysteresis, instant
promotion of a new loud talker, never one's own frames."""

from __future__ import annotations

from messenger_tui.relay.speakers import SpeakerSelector

MEMBERS = list("abcdef")


def feed(sel: SpeakerSelector[str], levels: dict[str, int], now: float, frames: int = 10) -> float:
    for _ in range(frames):
        now += 0.02
        for member, level in levels.items():
            sel.observe(member, level, now)
    return now


def make() -> SpeakerSelector[str]:
    sel: SpeakerSelector[str] = SpeakerSelector()
    for member in MEMBERS:
        sel.add(member)
    return sel


def test_small_rooms_forward_everyone_but_oneself() -> None:
    sel: SpeakerSelector[str] = SpeakerSelector()
    for member in "abcd":
        sel.add(member)
    assert sel.selected("a") == {"b", "c", "d"}
    assert not sel.forwards("a", "a")


def test_top_three_by_level() -> None:
    sel = make()
    # level byte: 0 is loudest; 127 silent
    feed(sel, {"a": 10, "b": 20, "c": 30, "d": 40, "e": 50, "f": 127}, 0.0, frames=50)
    assert sel.selected("f") == {"a", "b", "c"}
    assert sel.selected("a") == {"b", "c", "d"}
    assert sel.selected("d") == {"a", "b", "c"}


def test_hysteresis_keeps_a_speaker_against_a_slightly_louder_one() -> None:
    sel = make()
    now = feed(sel, {"a": 10, "b": 20, "c": 30, "d": 127, "e": 127, "f": 127}, 0.0, frames=50)
    assert sel.selected("f") == {"a", "b", "c"}
    # d becomes 4 dB louder than c: within the 6 dB hysteresis, c stays
    now = feed(sel, {"a": 10, "b": 20, "c": 30, "d": 26, "e": 127, "f": 127}, now, frames=50)
    assert sel.selected("f") == {"a", "b", "c"}
    # 10 dB louder: d replaces c
    feed(sel, {"a": 10, "b": 20, "c": 30, "d": 20, "e": 127, "f": 127}, now, frames=50)
    assert sel.selected("f") == {"a", "b", "d"}


def test_a_new_talker_is_forwarded_from_its_first_loud_frame() -> None:
    sel = make()
    now = feed(sel, {"a": 10, "b": 15, "c": 20, "d": 127, "e": 127, "f": 127}, 0.0, frames=50)
    now = feed(sel, {m: 127 for m in MEMBERS}, now, frames=100)  # everyone falls silent
    assert "e" not in sel.selected("f")
    sel.observe("e", 5, now + 0.001)  # e starts talking, within the reselect period
    assert sel.forwards("f", "e")


def test_leavers_drop_out() -> None:
    sel = make()
    feed(sel, {"a": 10, "b": 20, "c": 30, "d": 40, "e": 50, "f": 127}, 0.0, frames=50)
    sel.remove("a")
    assert sel.selected("f") == {"b", "c", "d"}
    sel.observe("a", 0, 100.0)  # a frame in flight from a leaver changes nothing
    assert "a" not in sel.selected("f")
