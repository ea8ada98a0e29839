"""Foundations: errors, settings, metrics, logs, configuration files, the participant directory,
packaged resources."""
