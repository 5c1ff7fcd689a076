"""messenger_tui: an end-to-end encrypted terminal messenger with a self-hostable relay."""

__version__ = "0.1.0"
