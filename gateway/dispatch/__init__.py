"""Dispatch: the one place that turns delivery records into confirmed broker messages."""
