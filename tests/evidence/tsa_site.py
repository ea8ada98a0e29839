"""A local RFC 3161 Time-Stamping Authority for the tests: ``openssl ts -reply`` behind HTTP.

``python tsa_site.py DIR PORT`` creates, under DIR, a TSA root CA (``tsa-ca.pem``) and a TSA
certificate (P-256, key purpose ``timeStamping``, critical) if they are not there, then serves
``POST /`` (``application/timestamp-query``): each query is answered by running ``openssl ts
-reply`` with them. ``GET /`` answers 200 once it listens (for the tests to wait on).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import sys
import tempfile
from pathlib import Path

from aiohttp import web
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

CONFIG = """\
[ tsa ]
default_tsa = tsa_config
[ tsa_config ]
dir = {dir}
serial = $dir/serial
crypto_device = builtin
signer_cert = $dir/tsa.pem
signer_key = $dir/tsa.key
signer_digest = sha256
default_policy = 1.2.3.4.1
digests = sha256, sha384, sha512
accuracy = secs:1
ordering = yes
tsa_name = yes
ess_cert_id_chain = no
ess_cert_id_alg = sha256
"""


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def make_tsa(where: Path) -> Path:
    """The TSA's files under ``where``; returns the CA certificate's path."""
    ca_path = where / "tsa-ca.pem"
    if ca_path.exists():
        return ca_path
    where.mkdir(parents=True, exist_ok=True)
    now = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=5)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = (
        x509.CertificateBuilder()
        .subject_name(_name("Test TSA Root"))
        .issuer_name(_name("Test TSA Root"))
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + dt.timedelta(days=3650))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(False, False, False, False, False, True, True, False, False),
            critical=True,
        )
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name("Test TSA"))
        .issuer_name(ca.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + dt.timedelta(days=3650))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(True, True, False, False, False, False, False, False, False),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.TIME_STAMPING]), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    (where / "tsa.key").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    (where / "tsa.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (where / "serial").write_text("01\n")
    (where / "tsa.cnf").write_text(CONFIG.format(dir=where))
    ca_path.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    return ca_path


def app(where: Path) -> web.Application:
    async def reply(request: web.Request) -> web.Response:
        query = await request.read()
        with tempfile.TemporaryDirectory() as tmp:
            (Path(tmp) / "q.tsq").write_bytes(query)
            done = await asyncio.create_subprocess_exec(
                "openssl", "ts", "-reply", "-config", str(where / "tsa.cnf"),
                "-queryfile", f"{tmp}/q.tsq", "-out", f"{tmp}/r.tsr",
                stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
            )  # fmt: skip
            _, errors = await done.communicate()
            if done.returncode != 0:
                return web.Response(status=500, text=errors.decode())
            answer = (Path(tmp) / "r.tsr").read_bytes()
        return web.Response(body=answer, content_type="application/timestamp-reply")

    async def ready(_: web.Request) -> web.Response:
        return web.Response(text="ok")

    application = web.Application()
    application.router.add_post("/", reply)
    application.router.add_get("/", ready)
    return application


if __name__ == "__main__":
    directory = Path(sys.argv[1])
    make_tsa(directory)
    web.run_app(app(directory), host="127.0.0.1", port=int(sys.argv[2]), print=None)
