"""Fixtures for every test: one private PulseAudio server for the session, for the tests that
go through real PortAudio devices (``pulse_server``, tests/helpers/pulseaudio.py)."""

from tests.helpers.pulseaudio import pulse_server, pulse_session

__all__ = ["pulse_server", "pulse_session"]
