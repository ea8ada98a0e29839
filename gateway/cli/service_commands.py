"""``lgsp run`` and ``lgsp send``: serve the gateway and workers; submit one package."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import ssl
from dataclasses import replace
from pathlib import Path
from typing import Any

import aiohttp
from yarl import URL

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
DOCUMENTS_PATH = "/api/v1/documents"


def register(commands: argparse._SubParsersAction[Any]) -> None:
    run = commands.add_parser("run", help="run the gateway and/or the delivery workers")
    add_config_option(run)
    run.add_argument(
        "--role",
        choices=[r.value for r in Role],
        default=Role.ALL.value,
        help="gateway: HTTP intake and console; worker: delivery workers; "
        "all (default): both in one process",
    )
    run.add_argument(
        "--host", default=None, help="listen on this address instead of [http] host (e.g. 0.0.0.0)"
    )
    run.add_argument(
        "--port", type=int, default=None, help="listen on this port instead of [http] port"
    )
    run.set_defaults(handler=_run)

    send = commands.add_parser(
        "send",
        help="submit a package to a gateway (signing it first with --as)",
        description="Submit FILE to a gateway's POST /api/v1/documents. From any host: "
        "`lgsp send FILE --url https://GATEWAY --api-key KEY` sends FILE as it is "
        "(already signed by the agency's own system). On the demo's host: "
        "`lgsp send FILE --config gateway.toml --as ORGANID` signs FILE with that "
        "participant's demo key and takes the address and API key from the demo.",
    )
    send.add_argument(
        "file",
        type=Path,
        metavar="FILE",
        help="the package: signed edXML or JWS (or unsigned, with --as)",
    )
    send.add_argument(
        "--url",
        default=None,
        metavar="URL",
        help="the gateway, e.g. https://lgsp.example.gov.vn (the path "
        f"{DOCUMENTS_PATH} is added); default: from the settings",
    )
    add_config_option(send)
    send.add_argument(
        "--as",
        dest="organ_id",
        default=None,
        metavar="ORGANID",
        help="sign FILE as this participant with its key under [pki] dir (demo)",
    )
    send.add_argument(
        "--api-key",
        default=None,
        help=f"the participant's API key (default: ${API_KEY_ENV}, else with --as "
        "the credentials.json beside the config; none with --cert)",
    )
    send.add_argument(
        "--no-sign",
        action="store_true",
        help="with --as: submit FILE as it is, only use that participant's key",
    )
    send.add_argument(
        "--cacert",
        type=Path,
        default=None,
        metavar="PEM",
        help="trust this CA for the gateway's TLS certificate",
    )
    send.add_argument(
        "--cert",
        type=Path,
        default=None,
        metavar="PEM",
        help="a client certificate for mutual TLS (with --key)",
    )
    send.add_argument(
        "--key", type=Path, default=None, metavar="PEM", help="the client certificate's private key"
    )
    send.add_argument(
        "--timeout-s",
        type=float,
        default=SEND_TIMEOUT_S,
        metavar="S",
        help=f"give up after S seconds (default {SEND_TIMEOUT_S:.0f})",
    )
    send.add_argument(
        "--json",
        action="store_true",
        help="print the gateway's JSON answer (or problem document) as it is",
    )
    send.set_defaults(handler=_send)


def _run(args: argparse.Namespace) -> int:
    settings = settings_from(args)
    http = settings.http
    if args.host is not None or args.port is not None:
        if args.port is not None and not 0 <= args.port <= 65535:
            raise ConfigError("--port must be between 0 and 65535", code="config.bad_argument")
        http = replace(
            http, host=args.host or http.host, port=http.port if args.port is None else args.port
        )
        settings = replace(settings, http=http)
    configure_logging(settings.log.level, json=settings.log.json)
    asyncio.run(serve(settings, Role(args.role)))
    return 0


class RefusedError(InputError):
    """The gateway answered with a problem document: its code, detail and hint, kept whole."""

    def __init__(self, status: int, problem: dict[str, Any]) -> None:
        code = str(problem.get("code") or f"http.{status}")
        detail = str(problem.get("detail") or problem.get("body") or f"HTTP {status}")
        hint = problem.get("hint")
        super().__init__(f"{detail} (hint: {hint})" if hint else detail, code=code)
        self.http_status = status
        self.problem = problem

    def to_problem(self) -> dict[str, object]:
        return dict(self.problem)


def _api_key(args: argparse.Namespace) -> str | None:
    """The API key to send; None when a client certificate authenticates instead."""
    if args.api_key:
        return str(args.api_key)
    if os.environ.get(API_KEY_ENV):
        return os.environ[API_KEY_ENV]
    if args.cert is not None:
        return None
    if args.organ_id is None:
        raise ConfigError(
            f"no API key: pass --api-key KEY, set ${API_KEY_ENV}, or give a client "
            "certificate (--cert/--key)",
            code="config.no_api_key",
        )
    credentials = config_path(args.config).parent / "credentials.json"
    try:
        entry = json.loads(credentials.read_text(encoding="utf-8")).get(args.organ_id)
    except (OSError, json.JSONDecodeError) as exc:
        raise ConfigError(
            f"no API key: pass --api-key or ${API_KEY_ENV} ({credentials}: {exc})",
            code="config.no_api_key",
        ) from exc
    if not isinstance(entry, dict) or not entry.get("api_key"):
        raise ConfigError(
            f"{credentials} has no API key for {args.organ_id}", code="config.no_api_key"
        )
    return str(entry["api_key"])


def _signed(data: bytes, settings: Settings, organ_id: str) -> tuple[bytes, PackageFormat]:
    fmt = sniff_format(data)
    ident = pki.load_identity(settings.pki.dir, organ_id)
    if fmt is PackageFormat.XML:
        return sign_xml(data, ident.key, ident.chain), fmt
    payload = data if fmt is PackageFormat.JSON else jws_payload(data)
    return sign_jws(payload, ident.key, ident.chain).encode("ascii"), PackageFormat.JWS


def documents_url(given: str) -> str:
    """``https://host[/base]`` -> ``https://host[/base]/api/v1/documents`` (kept if given)."""
    url = URL(given)
    if url.scheme not in ("http", "https") or not url.host:
        raise ConfigError(
            f"--url {given!r} is not an http:// or https:// URL", code="config.bad_argument"
        )
    if url.path.rstrip("/").endswith(DOCUMENTS_PATH):
        return str(url)
    return str(url.with_path(url.path.rstrip("/") + DOCUMENTS_PATH))


def _settings_url(settings: Settings) -> str:
    host = "127.0.0.1" if settings.http.host in ("0.0.0.0", "::") else settings.http.host  # noqa: S104
    scheme = "https" if settings.http.tls_cert else "http"
    return f"{scheme}://{host}:{settings.http.port}{DOCUMENTS_PATH}"


def _tls(args: argparse.Namespace) -> ssl.SSLContext | None:
    if (args.cert is None) != (args.key is None):
        raise ConfigError("--cert and --key go together", code="config.bad_argument")
    if args.cacert is None and args.cert is None:
        return None
    context = ssl.create_default_context(cafile=args.cacert)
    if args.cert is not None:
        context.load_cert_chain(args.cert, args.key)
    return context


async def post_package(
    url: str,
    api_key: str | None,
    body: bytes,
    fmt: PackageFormat,
    *,
    tls: ssl.SSLContext | None = None,
    timeout_s: float = SEND_TIMEOUT_S,
) -> tuple[int, dict[str, Any]]:
    """POST one package; the status and the JSON answer (or problem) of the gateway."""
    headers = {"Content-Type": fmt.media_type}
    if api_key is not None:
        headers["Authorization"] = f"Bearer {api_key}"
    timeout = aiohttp.ClientTimeout(total=timeout_s)
    try:
        async with (
            aiohttp.ClientSession(timeout=timeout) as session,
            session.post(
                url, data=body, headers=headers, ssl=tls if tls is not None else True
            ) as response,
        ):
            text = await response.text()
    except (aiohttp.ClientError, TimeoutError) as exc:
        raise UnavailableError(
            f"cannot reach the gateway at {url}: {exc}", code="unavailable.gateway"
        ) from exc
    try:
        answer = json.loads(text)
    except json.JSONDecodeError:
        answer = None
    if not isinstance(answer, dict):
        answer = {"status": response.status, "body": text[:500]}
    return response.status, answer


def _body(args: argparse.Namespace) -> tuple[bytes, PackageFormat]:
    data = args.file.read_bytes()
    if args.organ_id is not None and not args.no_sign:
        return _signed(data, settings_from(args), args.organ_id)
    fmt = sniff_format(data)
    if fmt is PackageFormat.JSON:
        raise InputError(
            "a JSON document must be signed (JWS) before it is sent; sign it, or "
            "pass --as ORGANID to sign it with the demo PKI",
            code="jws.malformed",
        )
    return data, fmt


def _send(args: argparse.Namespace) -> int:
    if args.url is None and args.organ_id is None:
        raise ConfigError(
            "say where to send: --url URL --api-key KEY (FILE already signed), or "
            "--config PATH --as ORGANID (sign with the demo PKI)",
            code="config.bad_argument",
        )
    body, fmt = _body(args)
    url = documents_url(args.url) if args.url else _settings_url(settings_from(args))
    status, answer = asyncio.run(
        post_package(url, _api_key(args), body, fmt, tls=_tls(args), timeout_s=args.timeout_s)
    )
    if not 200 <= status < 300:
        raise RefusedError(status, answer)
    if args.json:
        print(json.dumps(answer, ensure_ascii=False, indent=2))
    else:
        print("\n".join(accepted_lines(status, answer)))
    return 0


def accepted_lines(status: int, answer: dict[str, Any]) -> list[str]:
    """The gateway's 202/200 answer, for reading."""
    again = " (the same package again: nothing new)" if answer.get("duplicate") else ""
    lines = [
        f"accepted: document {answer.get('id')}, DocumentId {answer.get('document_id')} "
        f"(HTTP {status}){again}"
    ]
    for r in answer.get("recipients", []):
        lines.append(
            f"  {r.get('organ_id'):<16} {r.get('method', '-'):<8} {r.get('state'):<8} "
            f"delivery {r.get('delivery_id')}"
        )
    return lines
