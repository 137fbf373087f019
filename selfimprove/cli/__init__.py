"""Command-line interface (``selfimprove ...``); see ``selfimprove.cli.app``."""

from selfimprove.cli.app import app, main

__all__ = ["app", "main"]
