"""One demo PKI per test session, shared by the signature test modules.

Each module declares its own session fixture calling :func:`shared_pki`; the module-level cache
makes every module get the same directory, so the CA and keys are generated once.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.demo import pki

# Senders of the conformance samples, besides the demo participants (G22 is one of those).
CONFORMANCE_SENDERS = ("000.00.00.A80", "000.00.00.H41", "777.77.04.D77")

_CACHE: dict[str, Path] = {}


def shared_pki(factory: pytest.TempPathFactory) -> Path:
    """The session's demo PKI: the demo participants plus the conformance samples' senders."""
    if "pki" not in _CACHE:
        root = factory.mktemp("pki")
        pki.init_pki(root)
        for organ_id in CONFORMANCE_SENDERS:
            pki.issue(root, organ_id, name=f"Conformance sender {organ_id}")
        _CACHE["pki"] = root
    return _CACHE["pki"]


def other_pki(factory: pytest.TempPathFactory) -> Path:
    """A second, unrelated CA with the same root name (an impostor the store must not trust)."""
    if "other" not in _CACHE:
        root = factory.mktemp("other-pki")
        pki.init_pki(root, key_type="ec", participants=())
        _CACHE["other"] = root
    return _CACHE["other"]
