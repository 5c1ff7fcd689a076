"""Textual UI (arrives with the UI issue); talks only to messenger_tui.app."""
