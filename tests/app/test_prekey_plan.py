"""Prekey planning, pure: given what the relay and the store hold, what one upkeep round does
(messenger_tui/app/prekey_upkeep.py). No store, no relay."""

from __future__ import annotations

import pytest

from messenger_tui.app.prekey_upkeep import (
    PREKEY_BATCH,
    PREKEY_LOW_WATER,
    SIGNED_PREKEY_ROTATE_MS,
    PrekeyPlan,
    plan,
)

NOW = 1_700_000_000_000
FRESH = (7, NOW - 1000)  # signed prekey id 7, made a second ago


def test_first_run_makes_everything_and_publishes_a_batch() -> None:
    assert plan(
        remaining=0, unpublished=0, signed=None, relay_signed_id=None, now_ms=NOW
    ) == PrekeyPlan(
        rotate_signed=True, new_one_time=PREKEY_BATCH, publish_one_time=PREKEY_BATCH, publish=True
    )


def test_nothing_to_do_when_the_relay_is_stocked_and_current() -> None:
    got = plan(
        remaining=PREKEY_LOW_WATER, unpublished=0, signed=FRESH, relay_signed_id=7, now_ms=NOW
    )
    assert got == PrekeyPlan(rotate_signed=False, new_one_time=0, publish_one_time=0, publish=False)


@pytest.mark.parametrize(
    ("remaining", "unpublished", "new"),
    [
        (PREKEY_LOW_WATER - 1, 0, PREKEY_BATCH),  # one below the low-water mark
        (PREKEY_LOW_WATER, 0, 0),  # at the mark: enough
        (PREKEY_LOW_WATER - 5, 5, 0),  # unpublished ones count as stock
        (PREKEY_LOW_WATER - 5, 4, PREKEY_BATCH),
        (0, 0, PREKEY_BATCH),
    ],
)
def test_one_time_prekeys_are_topped_up_below_the_low_water_mark(
    remaining: int, unpublished: int, new: int
) -> None:
    got = plan(
        remaining=remaining, unpublished=unpublished, signed=FRESH, relay_signed_id=7, now_ms=NOW
    )
    assert got.new_one_time == new
    assert got.publish_one_time == min(unpublished + new, PREKEY_BATCH)
    assert got.publish == (got.publish_one_time > 0)
    assert not got.rotate_signed


def test_a_publish_carries_at_most_one_batch() -> None:
    got = plan(
        remaining=0, unpublished=PREKEY_BATCH + 30, signed=FRESH, relay_signed_id=7, now_ms=NOW
    )
    assert got.new_one_time == 0 and got.publish_one_time == PREKEY_BATCH and got.publish


def test_the_signed_prekey_rotates_once_a_week_old() -> None:
    exactly_a_week = (7, NOW - SIGNED_PREKEY_ROTATE_MS)
    older = (7, NOW - SIGNED_PREKEY_ROTATE_MS - 1)

    def at(signed: tuple[int, int]) -> PrekeyPlan:
        return plan(remaining=50, unpublished=0, signed=signed, relay_signed_id=7, now_ms=NOW)

    assert not at(exactly_a_week).rotate_signed
    rotated = at(older)
    assert rotated.rotate_signed and rotated.publish and rotated.publish_one_time == 0


def test_a_relay_missing_our_signed_prekey_gets_it_published() -> None:
    for relay_has in (None, 6):  # a new relay; a relay with an older one
        got = plan(remaining=50, unpublished=0, signed=FRESH, relay_signed_id=relay_has, now_ms=NOW)
        assert got == PrekeyPlan(
            rotate_signed=False, new_one_time=0, publish_one_time=0, publish=True
        )


def test_thresholds_are_parameters() -> None:
    got = plan(
        remaining=99,
        unpublished=0,
        signed=FRESH,
        relay_signed_id=7,
        now_ms=NOW,
        low_water=100,
        batch=10,
        rotate_after_ms=500,
    )
    assert got == PrekeyPlan(rotate_signed=True, new_one_time=10, publish_one_time=10, publish=True)
