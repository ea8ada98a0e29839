"""Gateway service: intake, verification, routing, delivery log."""
