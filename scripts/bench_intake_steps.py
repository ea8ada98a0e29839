"""Benchmark: the gateway's intake steps on one package, in process, CPU per call.

Two packages, signed by a demo participant (RSA-2048, as ``bench_e2e.py`` signs them): the small
mix's ~4 KB status package and the real mix's 361 KB ``edoc_new.edxml``. Each step is called
``--calls`` times per round (a quarter as many for the real one) and timed with
``time.process_time``; the figure is the best of ``--rounds`` rounds (the machine is shared), the
steps interleaved round by round.

Steps: reading the body off a stream (``read_limited``), the hardened parse (``load_xml``), the
XML-DSig check (``verify_xml_signature``), reading the records (``read_package``), the semantic
validation (``validate_package``), the whole ``Verifier.verify_xml`` (with trust and binding),
the package's SHA-256 (the store's key), the intake's own records (``dedup_key``), the
receipt's JWS through joserfc (``receipt_jws``, the reference) and as intake signs it
(``receipt``: ``ReceiptSigner``, claims and JSON included), and the national adapter's reading
of a package's sender and kind. The last line is one JSON object.

    .venv/bin/python scripts/bench_intake_steps.py [--rounds 5] [--calls 200] [--mix small|real]
        [--steps verify_xml ...]
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import os
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_packages import DISTRICT, Signer, original_documents, real_packages, status_packages
from bench_stack import DEFAULT_BROKER_URL

from adapters.base import OutboundDelivery
from adapters.national import adapter as national_adapter
from gateway.demo.setup import init_demo
from gateway.edxml.hardened import load_xml, read_limited
from gateway.edxml.validate import validate_package
from gateway.edxml.xml_codec import read_package
from gateway.intake.pipeline import dedup_key
from gateway.intake.receipts import Receipt, ReceiptSigner
from gateway.signatures.identity import Identity, load_gateway_identity
from gateway.signatures.jws import sign_jws
from gateway.signatures.truststore import TrustStore
from gateway.signatures.verify import Verifier
from gateway.signatures.xmldsig import verify_xml_signature

CHUNK_BYTES = 64 * 1024  # what aiohttp's stream hands ``read_limited`` at most


class _Stream:
    """A body stream over bytes, in chunks (aiohttp's ``StreamReader`` in miniature)."""

    def __init__(self, data: bytes) -> None:
        self._data, self._at = data, 0

    async def read(self, n: int) -> bytes:
        chunk = self._data[self._at : self._at + n]
        self._at += len(chunk)
        return chunk


def _read_body(data: bytes) -> Callable[[], object]:
    loop = asyncio.new_event_loop()
    return lambda: loop.run_until_complete(read_limited(_Stream(data), chunk_bytes=CHUNK_BYTES))


def _delivery(data: bytes) -> OutboundDelivery:
    return OutboundDelivery(
        delivery_id="bench",
        document_id="bench",
        organ_id=DISTRICT,
        package=data,
        content_type="application/xml",
    )


RECEIPT = json.dumps({
    "accepted_at": "2026-12-04T22:00:00+00:00",
    "document_id": "000.00.15.H56,2024/05/20,1/UBND-VP",
    "id": "0190b2c4-8f3e-7c1a-9d2b-3e4f5a6b7c8d",
    "package_sha256": "0" * 64,
    "sender": DISTRICT,
}, separators=(",", ":")).encode()  # fmt: skip
"""A receipt's payload, as ``ReceiptSigner`` writes it."""


def _steps(verifier: Verifier, identity: Identity, data: bytes) -> dict[str, Callable[[], object]]:
    receipts = ReceiptSigner(identity)
    receipt = Receipt(**json.loads(RECEIPT) | {"accepted_at": datetime.now(UTC)})
    root = load_xml(data)
    package = read_package(root)
    verified = verifier.verify_xml(data)
    delivery = _delivery(data)
    return {
        "read_limited": _read_body(data),
        "load_xml": lambda: load_xml(data),
        "verify_xml_signature": lambda: verify_xml_signature(load_xml(data)),
        "read_package": lambda: read_package(root),
        "validate_package": lambda: validate_package(package),
        "verify_xml": lambda: verifier.verify_xml(data),
        "sha256": lambda: hashlib.sha256(data).hexdigest(),
        "dedup_key": lambda: dedup_key(verified),
        "national_describe": lambda: national_adapter._describe(delivery),
        "receipt_jws": lambda: sign_jws(
            RECEIPT, identity.key, identity.chain, alg=identity.jws_algorithm
        ),
        "receipt": lambda: receipts.sign(receipt),
    }


def _per_call_ms(action: Callable[[], object], calls: int) -> float:
    started = time.process_time()
    for _ in range(calls):
        action()
    return (time.process_time() - started) * 1000 / calls


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument(
        "--calls", type=int, default=200, help="calls per round (small; real: a quarter)"
    )
    parser.add_argument("--mix", choices=("small", "real", "both"), default="both")
    parser.add_argument(
        "--steps", nargs="+", metavar="STEP", help="time only these steps (e.g. verify_xml)"
    )
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="bench-steps-") as tmp:
        setup = init_demo(Path(tmp) / "demo", broker_url=DEFAULT_BROKER_URL, prefix="bench-steps")
        signer = Signer(setup, DISTRICT)
        packages = {
            "small": status_packages(signer, original_documents(1), 1)[0],
            "real": real_packages(signer, 1)[0],
        }
        verifier = Verifier(TrustStore.from_dir(setup.pki_dir))
        identity = load_gateway_identity(setup.pki_dir)
    mixes = ("small", "real") if args.mix == "both" else (args.mix,)
    steps = {
        mix: {
            name: action
            for name, action in _steps(verifier, identity, packages[mix]).items()
            if not args.steps or name in args.steps
        }
        for mix in mixes
    }
    calls = {"small": args.calls, "real": max(10, args.calls // 4)}
    best: dict[str, dict[str, float]] = {mix: {} for mix in mixes}
    for _ in range(args.rounds):
        for mix in mixes:
            for name, action in steps[mix].items():
                ms = _per_call_ms(action, calls[mix])
                best[mix][name] = min(ms, best[mix].get(name, ms))
    for mix in mixes:
        size_kb = len(packages[mix]) / 1024
        print(f"{mix} ({size_kb:.1f} KB), ms of CPU per call, best of {args.rounds}")
        for name, ms in best[mix].items():
            print(f"  {name:<22} {ms:8.4f}")
    load = os.getloadavg()[0]
    print(json.dumps({
        "load_1m": round(load, 2),
        **{
            f"{mix}.{name}_ms": round(ms, 4)
            for mix in mixes
            for name, ms in best[mix].items()
        },
    }))  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
