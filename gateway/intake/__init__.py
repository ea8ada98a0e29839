"""Intake: verify a package, authorise the caller, route it, record it and hand it to dispatch."""
