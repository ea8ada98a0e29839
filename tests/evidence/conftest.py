"""Evidence tests: fixtures defined in ``evidence_kit``."""

from evidence_kit import filled, pki_dir, signed, tsa

__all__ = ["filled", "pki_dir", "signed", "tsa"]
