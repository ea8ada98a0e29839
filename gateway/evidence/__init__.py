"""The tamper-evident delivery log: chain verification, signed and time-stamped checkpoints,
evidence bundles and archive files (``docs/evidence.md``)."""
