"""Websocket close codes the relay sends, defined once for the relay and its clients.

The message link (``/``) and the media route (``/media``) share them; docs/protocol.md
describes when each is sent.
"""

from __future__ import annotations

from typing import Final

#: A policy violation: authentication failed or timed out, too many bad frames, a media leg
#: held by another identity, a media join that never came (RFC 6455's 1008).
CLOSE_POLICY: Final = 1008
#: A newer connection of the same identity (message link) or of the same call leg (media
#: route) replaced this one. The client must not reconnect at once: it would evict the other.
CLOSE_REPLACED: Final = 4000
#: Media route only: the other leg of the call never joined within the alone timeout.
CLOSE_ALONE: Final = 4001
