"""Delivery: the worker loop, its rules, and the handler that runs an adapter for a delivery."""
