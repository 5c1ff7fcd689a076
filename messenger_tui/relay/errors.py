"""Why a relay could not start: one exception per cause, each with a one-line message fit for
an operator (the relay command prints ``error: <message>`` and exits 1, no traceback)."""

from __future__ import annotations


class RelayStartError(Exception):
    """The relay could not start; ``str(exc)`` says why in one line."""


class DataDirError(RelayStartError):
    """The data directory cannot be used (a file, unwritable, a corrupt database or key)."""


class TlsSetupError(RelayStartError):
    """The TLS certificate or key cannot be loaded."""


class ListenError(RelayStartError):
    """The listening socket cannot be opened (port in use, address not available)."""
