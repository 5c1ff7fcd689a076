"""App service facade: the only thing the UI and the CLI talk to."""
