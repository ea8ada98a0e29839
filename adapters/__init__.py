"""Delivery workers and connectors."""
