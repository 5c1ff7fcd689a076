"""Opening a saved file hands it to ``xdg-open`` (a stand-in program on PATH here that
records its arguments), as one argument, without a shell; and only on request."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from messenger_tui.app.errors import BadInput
from messenger_tui.app.transfer_files import open_with_desktop


def fake_xdg_open(folder: Path, record: Path) -> None:
    folder.mkdir()
    program = folder / "xdg-open"
    program.write_text(f'#!/bin/sh\nprintf "%s\\n" "$#" "$1" > {record}\n')
    program.chmod(0o755)


def test_the_file_goes_to_xdg_open_as_one_argument(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    record = tmp_path / "args.txt"
    fake_xdg_open(tmp_path / "bin", record)
    monkeypatch.setenv("PATH", f"{tmp_path / 'bin'}{os.pathsep}{os.environ['PATH']}")
    saved = tmp_path / "a photo; rm -rf ~.jpg"
    saved.write_bytes(b"x")
    open_with_desktop(saved)
    deadline = time.monotonic() + 10
    while not record.exists() or not record.read_text().endswith("\n"):
        assert time.monotonic() < deadline, "xdg-open was not run"
        time.sleep(0.02)
    assert record.read_text().splitlines() == ["1", str(saved)]


def test_no_xdg_open_or_no_file_is_a_clear_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    saved = tmp_path / "a.txt"
    saved.write_text("x")
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    with pytest.raises(BadInput, match=r"no xdg-open here to open a\.txt; the file is at"):
        open_with_desktop(saved)
    fake_xdg_open(tmp_path / "bin", tmp_path / "args.txt")
    monkeypatch.setenv("PATH", str(tmp_path / "bin"))
    with pytest.raises(BadInput, match="is gone"):
        open_with_desktop(tmp_path / "missing.txt")
