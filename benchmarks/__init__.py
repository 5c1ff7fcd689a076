"""Benchmarks of messenger_tui: ``python -m benchmarks.run`` (or ``make bench``).

Benchmarks report numbers, they assert nothing. Every figure is measured beside a baseline
taken in the same run on the same machine (see docs/performance.md for the method).
"""
