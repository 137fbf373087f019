"""selfimprove.agents."""
