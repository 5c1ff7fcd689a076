"""Fixtures for media tests: a private PulseAudio server for the real-device tests."""

from tests.helpers.pulseaudio import pulse_server

__all__ = ["pulse_server"]
