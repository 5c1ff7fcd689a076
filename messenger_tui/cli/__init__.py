"""Command line entry points; the only place that composes relay and client layers."""
