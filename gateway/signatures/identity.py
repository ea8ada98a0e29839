"""The gateway's own signing identity (key, certificate, chain), loaded from the configured PKI.

Production and demo share one layout: ``<pki.dir>/gateway/{key,cert,chain}.pem`` (the chain leaf
first, up to and including the root). The demo PKI (``gateway.demo.pki``) writes these files;
in production an operator puts the gateway's issued key and certificate there.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TypeAlias

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from gateway.core.errors import ConfigError, NotFoundError

PrivateKey: TypeAlias = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey
GATEWAY_DIR = "gateway"


@dataclass(frozen=True, slots=True)
class Identity:
    """A private key with its certificate and chain (leaf first, up to and including the root)."""

    key: PrivateKey
    certificate: x509.Certificate
    chain: tuple[x509.Certificate, ...]


def load_identity_dir(where: Path, name: str) -> Identity:
    """The identity saved as ``key.pem``, ``cert.pem`` and ``chain.pem`` in ``where``."""
    try:
        key_pem = (where / "key.pem").read_bytes()
        cert_pem = (where / "cert.pem").read_bytes()
        chain_pem = (where / "chain.pem").read_bytes()
    except FileNotFoundError as exc:
        raise NotFoundError(
            f"no identity for {name} under {where.parent}", code="not_found.identity"
        ) from exc
    key = serialization.load_pem_private_key(key_pem, password=None)
    if not isinstance(key, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey):
        raise ConfigError(f"unsupported key type in {where}", code="config.pki_key_type")
    chain = tuple(x509.load_pem_x509_certificates(chain_pem))
    return Identity(key=key, certificate=x509.load_pem_x509_certificate(cert_pem), chain=chain)


def load_gateway_identity(pki_dir: Path) -> Identity:
    """The gateway's own identity under ``<pki_dir>/gateway/``."""
    return load_identity_dir(pki_dir / GATEWAY_DIR, GATEWAY_DIR)
