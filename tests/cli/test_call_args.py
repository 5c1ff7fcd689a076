"""``call`` / ``answer`` arguments: ``--bitrate`` is checked before anything connects."""

from __future__ import annotations

import pytest

from messenger_tui.cli.main import build_parser


def test_bitrate_is_a_whole_number_of_kbps_in_range(capsys: pytest.CaptureFixture[str]) -> None:
    parser = build_parser()
    assert parser.parse_args(["call", "bob", "--bitrate", "32"]).bitrate == 32
    assert parser.parse_args(["answer", "--bitrate", "12"]).bitrate == 12
    assert parser.parse_args(["answer"]).bitrate is None  # the settings decide
    for bad, says in (("8", "12-64 kb/s"), ("65", "12-64 kb/s"), ("fast", "not a whole number")):
        with pytest.raises(SystemExit) as exit_info:
            parser.parse_args(["call", "bob", "--bitrate", bad])
        assert exit_info.value.code == 2
        assert says in capsys.readouterr().err
