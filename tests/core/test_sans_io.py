"""core/ is sans-I/O: importing all of it loads no I/O, UI or audio module."""

from __future__ import annotations

import subprocess
import sys

FORBIDDEN = [
    "asyncio",
    "sqlite3",
    "sqlcipher3",
    "socket",
    "websockets",
    "textual",
    "sounddevice",
    "opuslib",
]


def test_core_imports_no_io_modules() -> None:
    code = (
        "import sys, pkgutil, importlib, messenger_tui.core as core\n"
        "for m in pkgutil.walk_packages(core.__path__, 'messenger_tui.core.'):\n"
        "    importlib.import_module(m.name)\n"
        f"bad = [m for m in {FORBIDDEN!r} if m in sys.modules]\n"
        "print(','.join(bad))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout.strip()
    assert out == "", f"core loaded I/O modules: {out}"
