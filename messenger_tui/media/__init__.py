"""Audio I/O, codec and call media (arrives with the calls issue)."""
