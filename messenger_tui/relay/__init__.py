"""The relay server: authenticated websocket endpoint, store-and-forward mailboxes, prekey
directory, presence and ephemeral signal forwarding.

Start one with :func:`messenger_tui.relay.server.run_relay` (or ``python -m messenger_tui.relay``),
or embed :class:`messenger_tui.relay.server.RelayServer`. Configuration lives in
:class:`messenger_tui.relay.config.RelayConfig`. The relay imports only ``messenger_tui.core``,
the stdlib, ``websockets``, ``nacl`` and ``msgspec``.
"""
