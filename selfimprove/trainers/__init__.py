"""selfimprove.trainers."""
