"""Composition: the app factory, the components built from settings, the runner and workers."""
