"""Textual UI; talks only to messenger_tui.app. Build it with :func:`make_app`."""

from messenger_tui.ui.app import MessengerApp, make_app

__all__ = ["MessengerApp", "make_app"]
