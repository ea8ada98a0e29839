"""Fuzz targets: untrusted bytes into each parser and verifier; anything but our errors is a crash.

Each target takes one input and returns normally, or raises the project's own ``LgspError``
(refusal: the target swallows it). Any other exception, an assertion of a round-trip property
included, propagates: that is a finding. ``seeds()`` gives each target's starting corpus: the
conformance packages, the malicious-XML corpus, and inputs that pass the checks (signed
packages, a JWS, signed southbound headers) so that mutations reach the code behind them.
Run them with ``scripts/fuzz`` (atheris, ``tests/fuzz/harness.py``).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator
from functools import cache
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from multidict import CIMultiDict
from samples import WELL_FORMED_FILES

from adapters.national import protocol
from gateway.core.errors import LgspError
from gateway.edxml import json_codec
from gateway.edxml.hardened import load_xml
from gateway.edxml.xml_codec import parse_package, serialize_package
from gateway.signatures.jws import sign_jws, verify_jws
from gateway.signatures.xmldsig import sign_xml, verify_xml_signature

MALICIOUS_DIR = Path(__file__).resolve().parent.parent / "edxml" / "malicious"
REGRESSIONS_DIR = Path(__file__).resolve().parent / "regressions"
SYSTEM_ID = "000.00.00.H56-fuzz"
SECRET = "fuzz-secret"
JWS_ALGS = frozenset({"RS256", "RS512", "ES256"})
Target = Callable[[bytes], None]


def hardened(data: bytes) -> None:
    try:
        load_xml(data)
    except LgspError:
        return


def xml_codec(data: bytes) -> None:
    """Parse; what parses must write and read back to the same record."""
    try:
        package = parse_package(data)
    except LgspError:
        return
    try:
        written = serialize_package(package)
    except LgspError:
        return  # text XML cannot carry (edxml.unserializable): refused, not a crash
    assert parse_package(written) == package, "XML round trip changed the record"


def json_codec_target(data: bytes) -> None:
    """Load; what loads must dump and load back to the same record."""
    try:
        package = json_codec.loads(data)
    except LgspError:
        return
    assert json_codec.loads(json_codec.dumps(package)) == package, "JSON round trip changed it"


def xmldsig(data: bytes) -> None:
    try:
        verify_xml_signature(load_xml(data))
    except LgspError:
        return


def jws(data: bytes) -> None:
    try:
        verify_jws(data, allowed_algs=JWS_ALGS, max_bytes=1 << 20)
    except LgspError:
        return


def southbound(data: bytes) -> None:
    """``Name: value`` lines are the request's headers; the HMAC check, then the timestamp's."""
    headers: CIMultiDict[str] = CIMultiDict()
    for line in data.decode("utf-8", "replace").splitlines():
        name, sep, value = line.partition(":")
        if sep:
            headers.add(name.strip(), value.strip())
    credentials = protocol.SystemCredentials(SYSTEM_ID, SECRET)
    try:
        signed, found = protocol.verify_signature(
            headers, lambda system: credentials if system == SYSTEM_ID else None
        )
        protocol.check_timestamp(signed, found.timestamp_window_s, _now())
        protocol.parse_to(headers.get(protocol.HEADER_PREFIX + protocol.Param.TO.value))
    except LgspError:
        return


TARGETS: dict[str, Target] = {
    "hardened": hardened,
    "xml_codec": xml_codec,
    "json_codec": json_codec_target,
    "xmldsig": xmldsig,
    "jws": jws,
    "southbound": southbound,
}


# -- seeds ----------------------------------------------------------------------------------------


def _now() -> dt.datetime:
    return dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=dt.UTC)


@cache
def _signer() -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "fuzz signer")])
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(_now() - dt.timedelta(days=1))
        .not_valid_after(_now() + dt.timedelta(days=3650))
        .sign(key, hashes.SHA256())
    )
    return key, cert


def _conformance() -> list[bytes]:
    return [path.read_bytes() for path in WELL_FORMED_FILES]


def _small_conformance() -> list[bytes]:
    """The packages without a large attachment: mutations of 370 KB inputs are slow."""
    return [data for data in _conformance() if len(data) < 64 * 1024]


def _malicious() -> list[bytes]:
    return [p.read_bytes() for p in sorted(MALICIOUS_DIR.iterdir()) if p.suffix != ".toml"]


def _signed_xml() -> list[bytes]:
    key, cert = _signer()
    unsigned = [serialize_package(parse_package(d)) for d in _small_conformance()]
    return [sign_xml(d, key, [cert]) for d in unsigned]


def _json_packages() -> list[bytes]:
    return [json_codec.dumps(parse_package(d)) for d in _small_conformance()]


def _tokens() -> list[bytes]:
    key, cert = _signer()
    return [sign_jws(p, key, [cert]).encode("ascii") for p in _json_packages()[:4]]


def _southbound_requests() -> list[bytes]:
    at = _now()
    out = []
    for extra in (
        {},
        {protocol.Param.TO.value: "000.00.04.H56,000.00.15.H56"},
        {protocol.Param.TO.value: '["000.00.04.H56"]'},
        {protocol.Param.DOC_ID.value: "42"},
    ):
        params = {**protocol.base_params(SYSTEM_ID, at), **extra}
        headers = {
            **protocol.signed_headers(params, SECRET),
            **{protocol.HEADER_PREFIX + k: v for k, v in params.items()},
        }
        out.append("".join(f"{k}: {v}\n" for k, v in headers.items()).encode("utf-8"))
    return out


SEEDS: dict[str, Callable[[], list[bytes]]] = {
    "hardened": lambda: _conformance() + _malicious(),
    "xml_codec": lambda: _small_conformance() + _malicious()[:20],
    "json_codec": _json_packages,
    "xmldsig": lambda: _signed_xml() + _small_conformance(),
    "jws": _tokens,
    "southbound": _southbound_requests,
}


def seeds(target: str) -> Iterator[bytes]:
    """The target's seeds, then the inputs that once crashed it (``regressions/TARGET/``)."""
    yield from SEEDS[target]()
    found = REGRESSIONS_DIR / target
    if found.is_dir():
        yield from (path.read_bytes() for path in sorted(found.iterdir()))
