"""Evidence bundles: written by ``lgsp archive bundle``, checked offline by ``verify-bundle``; one
changed byte anywhere, or a changed package, receipt, event, path, signature or time-stamp (even
with the manifest signed again by the gateway's key), and it no longer verifies."""

from __future__ import annotations

import asyncio
import json
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
from evidence_kit import Filled, Tsa, fill, lgsp, lgsp_process, with_pki_and_tsa
from tsa_site import make_tsa

from gateway.core.errors import SignatureError
from gateway.core.settings import Settings, load_settings
from gateway.evidence.bundle_check import check_bundle
from gateway.evidence.bundle_format import MANIFEST, Trust, read_zip, sha256_hex, write_zip
from gateway.evidence.components import build_bundler
from gateway.signatures.identity import load_gateway_identity
from gateway.signatures.jws import sign_jws, verify_jws
from gateway.store import DeliveryLog


def bundle_cli(filled: Filled, document: str, out: Path) -> None:
    done = lgsp("archive", "bundle", document, "-o", str(out), "--config", str(filled.config))
    assert done.returncode == 0, done.stderr
    assert "checked:" in done.stdout


async def test_a_bundle_verifies_offline(signed: Filled, tmp_path: Path) -> None:
    out = tmp_path / "evidence.zip"
    bundle_cli(signed, signed.document_id, out)  # by DocumentId; no checkpoint yet: one is made
    trust = signed.config.parent / "archive" / "trust"
    elsewhere = tmp_path / "third-party"  # the bundle and the trust directory, nothing else
    shutil.copytree(trust, elsewhere / "trust")
    shutil.copy(out, elsewhere / "evidence.zip")
    if signed.url.startswith("sqlite"):  # no store to ask any more
        await asyncio.to_thread(Path(signed.url.split("///", 1)[1]).unlink)

    bundle, trust_dir = str(elsewhere / "evidence.zip"), str(elsewhere / "trust")
    done = lgsp_process("archive", "verify-bundle", bundle, "--trust", trust_dir)  # a third party
    assert (done.returncode, done.stderr) == (0, ""), done.stderr
    lines = done.stdout.splitlines()
    assert f"document {signed.document} ({signed.document_id}) from 000.00.00.H56" in lines[1]
    assert "1 status answers, each on the chain" in done.stdout
    assert ", time-stamped " in done.stdout
    assert "compare the fingerprints" not in done.stdout

    alone = lgsp("archive", "verify-bundle", str(elsewhere / "evidence.zip"))
    assert alone.returncode == 0, alone.stderr
    assert "compare the fingerprints above with the published ones" in alone.stdout


@pytest.fixture(scope="module")
def made(
    tmp_path_factory: pytest.TempPathFactory, pki_dir: Path, tsa: Tsa
) -> tuple[bytes, Trust, Callable[[dict[str, bytes]], bytes]]:
    """A bundle (built in-process from an SQLite store: checking it reads no store), the trust
    it is checked with, and a way to re-sign a changed one's manifest with the gateway's own
    key (an insider holding the key). One for the module: the tests only read it (each changes
    a copy of its members)."""
    where = tmp_path_factory.mktemp("made")

    async def build() -> tuple[Settings, bytes]:
        url = f"sqlite+aiosqlite:///{where}/log.db"
        signed = with_pki_and_tsa(await fill(url, where), pki_dir, tsa)
        settings = load_settings(signed.config)
        log = await DeliveryLog.open(signed.url)
        try:
            return settings, (await build_bundler(settings, log).build(signed.document)).data
        finally:
            await log.aclose()

    settings, data = asyncio.run(build())
    identity = load_gateway_identity(settings.pki.dir)

    def resigned(members: dict[str, bytes]) -> bytes:
        claims = json.loads(verify_jws(members[MANIFEST]).payload)
        claims["files"] = {n: sha256_hex(d) for n, d in sorted(members.items()) if n != MANIFEST}
        payload = json.dumps(claims, separators=(",", ":"), sort_keys=True).encode()
        members[MANIFEST] = sign_jws(payload, identity.key, identity.chain).encode()
        return write_zip(members)

    return data, Trust.from_dir(settings.archive.dir / "trust"), resigned


def flip(data: bytes, at: int) -> bytes:
    return data[:at] + bytes([data[at] ^ 0x01]) + data[at + 1 :]


def test_one_changed_byte_anywhere_fails(
    made: tuple[bytes, Trust, Callable[[dict[str, bytes]], bytes]],
) -> None:
    data, trust, _ = made
    assert check_bundle(data, trust).document
    stride = max(1, len(data) // 1500)
    positions = sorted({*range(0, len(data), stride), len(data) - 1})
    passed = []
    for at in positions:
        try:
            check_bundle(flip(data, at), trust)
        except SignatureError:
            continue
        passed.append(at)
    assert passed == [], f"changed bytes at {passed} went unnoticed"


REGIONS = {  # member (prefix) -> what the checker must say
    "packages/": "does not hash to its recorded SHA-256",
    "receipt.jws": "the receipt",
    "records.json": "does not hash to the path's digest",
    "path.json": "the path's chain hash is not the signed one",
    "checkpoints/*.jws": "checkpoint",
    "checkpoints/*.tsr": "time-stamp",
}


@pytest.mark.parametrize("region", sorted(REGIONS))
def test_a_changed_region_fails_even_with_the_manifest_signed_again(
    made: tuple[bytes, Trust, Callable[[dict[str, bytes]], bytes]], region: str
) -> None:
    data, trust, resigned = made
    members = read_zip(data)
    prefix, _, suffix = region.partition("*")
    name = next(n for n in sorted(members) if n.startswith(prefix) and n.endswith(suffix))
    members[name] = _changed(name, members[name])
    with pytest.raises(SignatureError) as caught:
        check_bundle(resigned(members), trust)
    assert REGIONS[region] in caught.value.message, caught.value.message


def test_changed_certificates_fail_when_the_bundle_is_its_own_trust(
    made: tuple[bytes, Trust, Callable[[dict[str, bytes]], bytes]], tmp_path: Path
) -> None:
    """Another root CA in place of the bundle's: the gateway's signatures no longer chain."""
    data, _, resigned = made
    members = read_zip(data)
    for name in [n for n in members if n.startswith("certificates/")]:
        del members[name]
    members["certificates/ca-someone.pem"] = (make_tsa(tmp_path / "other")).read_bytes()
    with pytest.raises(SignatureError) as caught:
        check_bundle(resigned(members), None)
    assert "not trusted" in caught.value.message


def _changed(name: str, content: bytes) -> bytes:
    """One byte of ``name`` changed where it matters (inside a value, a signature, a digest)."""
    if name == "records.json":
        return content.replace(b'"actor": "worker"', b'"actor": "workes"', 1)
    if name == "path.json":  # the hash the first path starts from
        path = json.loads(content)
        start = path["segments"][0]["start_hash"]
        path["segments"][0]["start_hash"] = start[:-1] + ("1" if start[-1] == "0" else "0")
        changed = json.dumps(path, ensure_ascii=False, indent=1, sort_keys=True).encode()
        assert sum(a != b for a, b in zip(changed, content, strict=True)) == 1
        return changed
    if name.endswith(".jws"):  # a byte of the signature part
        return flip(content, len(content) - 10)
    return flip(content, len(content) // 2)
