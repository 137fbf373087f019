"""selfimprove.graphs."""
