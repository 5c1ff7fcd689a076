"""A child interpreter that loads only what the code under test loads.

Tests that import a layer in a fresh interpreter and list ``sys.modules`` must not see the
modules coverage.py brings into every measured child process (``make test`` measures child
processes too: pyproject's ``[tool.coverage.run] patch``), such as sqlite3 and socket.
"""

from __future__ import annotations

import os
import subprocess
import sys


def bare_env() -> dict[str, str]:
    """This process's environment without coverage's child-process switch."""
    env = dict(os.environ)
    env.pop("COVERAGE_PROCESS_CONFIG", None)
    env.pop("COVERAGE_PROCESS_START", None)
    return env


def run_python(code: str) -> str:
    """Run ``code`` in a fresh, unmeasured interpreter; its stdout, stripped."""
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, env=bare_env()
    ).stdout.strip()
