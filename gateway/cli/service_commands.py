"""``lgsp run`` and ``lgsp send``: serve the gateway and workers; sign and submit one package."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
from pathlib import Path
from typing import Any

import aiohttp

from gateway.cli.ops_commands import add_config_option, config_path, settings_from
from gateway.core.errors import ConfigError, InputError, UnavailableError
from gateway.core.logs import configure_logging
from gateway.core.settings import Settings
from gateway.demo import pki
from gateway.edxml.formats import PackageFormat, jws_payload, sniff_format
from gateway.service.runner import Role, serve
from gateway.signatures.jws import sign_jws
from gateway.signatures.xmldsig import sign_xml

API_KEY_ENV = "LGSP_API_KEY"
SEND_TIMEOUT_S = 120.0


def register(commands: argparse._SubParsersAction[Any]) -> None:
    run = commands.add_parser("run", help="run the gateway and/or the delivery workers")
    add_config_option(run)
    run.add_argument("--role", choices=[r.value for r in Role], default=Role.ALL.value)
    run.set_defaults(handler=_run)

    send = commands.add_parser("send", help="sign FILE as a participant and submit it")
    send.add_argument("file", type=Path, metavar="FILE")
    add_config_option(send)
    send.add_argument("--as", dest="organ_id", required=True, metavar="ORGANID")
    send.add_argument("--api-key", default=None,
                      help=f"the participant's API key (default: ${API_KEY_ENV}, else the "
                           "credentials.json beside the config)")
    send.add_argument("--no-sign", action="store_true", help="submit FILE as it is")
    send.set_defaults(handler=_send)


def _run(args: argparse.Namespace) -> int:
    settings = settings_from(args)
    configure_logging(settings.log.level, json=settings.log.json)
    asyncio.run(serve(settings, Role(args.role)))
    return 0


def _api_key(args: argparse.Namespace) -> str:
    if args.api_key:
        return str(args.api_key)
    if os.environ.get(API_KEY_ENV):
        return os.environ[API_KEY_ENV]
    credentials = config_path(args.config).parent / "credentials.json"
    try:
        entry = json.loads(credentials.read_text(encoding="utf-8")).get(args.organ_id)
    except (OSError, json.JSONDecodeError) as exc:
        raise ConfigError(f"no API key: pass --api-key or ${API_KEY_ENV} ({credentials}: {exc})",
                          code="config.no_api_key") from exc
    if not isinstance(entry, dict) or not entry.get("api_key"):
        raise ConfigError(f"{credentials} has no API key for {args.organ_id}",
                          code="config.no_api_key")
    return str(entry["api_key"])


def _signed(data: bytes, settings: Settings, organ_id: str) -> tuple[bytes, PackageFormat]:
    fmt = sniff_format(data)
    ident = pki.load_identity(settings.pki.dir, organ_id)
    if fmt is PackageFormat.XML:
        return sign_xml(data, ident.key, ident.chain), fmt
    payload = data if fmt is PackageFormat.JSON else jws_payload(data)
    return sign_jws(payload, ident.key, ident.chain).encode("ascii"), PackageFormat.JWS


async def _post(url: str, api_key: str, body: bytes, fmt: PackageFormat) -> tuple[int, Any]:
    headers = {"Authorization": f"Bearer {api_key}", "Content-Type": fmt.media_type}
    timeout = aiohttp.ClientTimeout(total=SEND_TIMEOUT_S)
    try:
        async with aiohttp.ClientSession(timeout=timeout) as session, session.post(
            url, data=body, headers=headers
        ) as response:
            text = await response.text()
            try:
                return response.status, json.loads(text)
            except json.JSONDecodeError:
                return response.status, {"status": response.status, "body": text[:500]}
    except (aiohttp.ClientError, TimeoutError) as exc:
        raise UnavailableError(f"cannot reach the gateway at {url}: {exc}",
                               code="unavailable.gateway") from exc


def _send(args: argparse.Namespace) -> int:
    settings = settings_from(args)
    data = args.file.read_bytes()
    if args.no_sign:
        body, fmt = data, sniff_format(data)
        if fmt is PackageFormat.JSON:
            raise InputError("a JSON document must be signed (JWS) before it is sent",
                             code="jws.malformed")
    else:
        body, fmt = _signed(data, settings, args.organ_id)
    host = "127.0.0.1" if settings.http.host in ("0.0.0.0", "::") else settings.http.host  # noqa: S104
    scheme = "https" if settings.http.tls_cert else "http"
    url = f"{scheme}://{host}:{settings.http.port}/api/v1/documents"
    status, answer = asyncio.run(_post(url, _api_key(args), body, fmt))
    print(json.dumps(answer, ensure_ascii=False, indent=2))
    return 0 if 200 <= status < 300 else 1
