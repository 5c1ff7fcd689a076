"""Voice calls, sans-I/O: signalling, call messages, media keys and the audio payload layout.

- :mod:`.signalling`: :class:`~.signalling.CallSignalling`, the state machine (a transition
  table) that turns user actions, the peer's messages, media reports and deadlines into effects.
- :mod:`.messages`: the offer / ringing / accept / decline / busy / hangup structs that travel
  inside the end-to-end ratchet.
- :mod:`.media_keys`: per-call, per-direction media keys and the relay join token.
- :mod:`.audio_payload`: what a sealed media frame carries (an Opus packet, plus the previous
  one for loss repair). Frame sealing itself is :mod:`messenger_tui.core.crypto.media_frame`.

docs/notes/calls.md describes the protocol; the media and transport layers drive these.
"""
