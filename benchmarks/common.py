"""Settings shared by the benchmarks and small formatting helpers."""

from __future__ import annotations

import io
import pstats
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class Settings:
    """How much to measure. ``quick`` shrinks every count and duration (< 60 s in total)."""

    workdir: Path
    quick: bool = False
    profile: bool = False


def fmt(value: float | None, digits: int = 0, suffix: str = "") -> str:
    """A number for a table cell ("-" when missing), with thousands separators."""
    if value is None:
        return "-"
    return f"{value:,.{digits}f}{suffix}"


def md_table(header: list[str], rows: list[list[str]], align: str = "") -> str:
    """A Markdown table; ``align`` has one l/r per column (default: first left, rest right)."""
    align = align or "l" + "r" * (len(header) - 1)
    marks = ["---" if a == "l" else "--:" for a in align]
    lines = ["| " + " | ".join(header) + " |", "| " + " | ".join(marks) + " |"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


_CATEGORIES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("waiting in epoll (idle)", ("'poll' of 'select.epoll'",)),
    ("SQLite (C)", ("sqlite3",)),
    ("syscalls (socket send/recv, epoll ctl)", ("of '_socket.socket'", "of 'select.epoll'")),
    ("crypto (nacl, hashlib, hmac)", ("/nacl/", "_sodium", "_hashlib", "/hmac.py")),
    ("msgspec", ("msgspec",)),
    ("websockets (Python)", ("/websockets/",)),
    ("asyncio (Python)", ("/asyncio/", "_asyncio", "_contextvars")),
)


def _category(filename: str, funcname: str) -> str:
    where = f"{filename}:{funcname}"
    for name, needles in _CATEGORIES:
        if any(n in where for n in needles):
            return name
    marker = "/messenger_tui/"
    if marker in filename:
        sub = filename.split(marker, 1)[1].split("/")
        package = "/".join(sub[:2]) if sub[0] == "core" and len(sub) > 2 else sub[0]
        return f"messenger_tui/{package.removesuffix('.py')} (Python)"
    return "other"


def profile_summary(stats: pstats.Stats, top: int, cumulative_top: int = 10) -> dict[str, Any]:
    """From cProfile stats: own time by category, the ``top`` functions by own time, and the
    project's own functions with the most cumulative time (where the stages cost)."""
    by_category: dict[str, float] = {}
    ours: list[tuple[float, int, str]] = []
    raw: dict[Any, Any] = stats.stats  # type: ignore[attr-defined]
    for (filename, line, funcname), (_cc, nc, tt, ct, _callers) in raw.items():
        name = _category(filename, funcname)
        by_category[name] = by_category.get(name, 0.0) + tt
        marker = "/messenger_tui/"
        entry_point = funcname == "<module>" or filename.endswith("__main__.py")
        if marker in filename and not entry_point:
            ours.append((ct, nc, f"{filename.split(marker, 1)[1]}:{line}({funcname})"))
    idle = by_category.pop("waiting in epoll (idle)", 0.0)
    busy = sum(by_category.values()) or 1.0
    categories = [
        [name, round(seconds, 3), round(100 * seconds / busy, 1)]
        for name, seconds in sorted(by_category.items(), key=lambda kv: -kv[1])
    ]
    buffer = io.StringIO()
    stats.stream = buffer  # type: ignore[attr-defined]
    stats.sort_stats(pstats.SortKey.TIME).print_stats(top)
    lines = buffer.getvalue().splitlines()
    start = next((i for i, line in enumerate(lines) if "ncalls" in line), 0)
    ours.sort(reverse=True)
    return {
        "busy_s": round(busy, 3),
        "idle_s": round(idle, 3),
        "categories": categories,
        "cumulative": [
            [label, nc, round(ct, 3), round(100 * ct / busy, 1)]
            for ct, nc, label in ours[:cumulative_top]
        ],
        "top": [line.rstrip() for line in lines[start:] if line.strip()],
    }


def render_profile(summary: dict[str, Any], title: str) -> list[str]:
    """Markdown lines: the category table and the top functions."""
    rows = [
        [name, fmt(seconds, 2), fmt(pct, 1, " %")] for name, seconds, pct in summary["categories"]
    ]
    cumulative = [
        [f"`{label}`", fmt(nc), fmt(ct, 2), fmt(pct, 1, " %")]
        for label, nc, ct, pct in summary.get("cumulative", [])
    ]
    return [
        title,
        "",
        md_table(["own time in", "seconds", "share of busy time"], rows),
        "",
        md_table(
            ["project function (cumulative, incl. callees)", "calls", "seconds", "share"],
            cumulative,
        ),
        "",
        "Top functions by own time:",
        "",
        "```",
        *summary["top"],
        "```",
    ]
