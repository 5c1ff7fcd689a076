"""A group call's read model for the UI and the CLI: who is in the room, with their health."""

from __future__ import annotations

from messenger_tui.app.group_models import Group, GroupCallParticipant, GroupCallView
from messenger_tui.media.group_receive import ParticipantHealth


def group_call_view(
    group: Group,
    state: str,
    present: list[bytes],
    health: list[ParticipantHealth],
    *,
    muted: bool,
    problem: str | None,
    joined_ms: int | None,
) -> GroupCallView:
    """The view of a group's call: the identities ``present`` in the room (named as the
    group names them; "not a member" for anyone else the relay lets in) with their health."""
    names = {m.identity: m.name for m in group.members}
    by_identity = {h.identity: h for h in health}
    participants = []
    for identity in present:
        name = names.get(identity, "not a member")
        h = by_identity.get(identity)
        if h is None:
            participants.append(GroupCallParticipant(identity, name))
            continue
        participants.append(
            GroupCallParticipant(
                identity,
                name,
                speaking=h.speaking,
                level_dbov=h.level_dbov,
                frames_received=h.frames_received,
                loss_percent=h.loss_percent,
                delay_ms=h.delay_ms,
                heard=h.frames_received > 0,
                voice_frames_received=h.voice_frames_received,
                voice_frames_expected=h.voice_frames_expected,
            )
        )
    return GroupCallView(
        group_row=group.id,
        group_name=group.name,
        state=state,
        participants=tuple(participants),
        muted=muted,
        problem=problem,
        joined_ms=joined_ms,
    )
