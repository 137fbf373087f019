"""selfimprove.console."""
