"""The SOAP routes file: ``[[route]]`` tables read into ``SoapRoute`` records, typos refused.

[[route]]
name = "national-documents"          # what a participant's delivery url names
wsdl = "document-service.wsdl"       # relative to schemas/wsdl/, or absolute
operation = "ReceiveDocument"
# wsdl_service = "…"  wsdl_port = "…" # optional: the WSDL's first service and port otherwise
endpoint = "http://10.0.0.5:8080/DocumentReceivingService"   # optional: the WSDL address
timeout_s = 30.0                      # optional
user_id = "lgsp-thanhhoa"
protocol_version = "4.0"              # optional

[route.client]                        # xrd:client
instance = "VN"
member_class = "GOV"
member_code = "000.00.00.H56"
subsystem = "lgsp"                    # optional

[route.service]                       # xrd:service
instance = "VN"
member_class = "GOV"
member_code = "000.00.00.G22"
subsystem = "ndxp"                    # optional
service_code = "ReceiveDocument"
service_version = "v1"                # optional

[route.request]                       # request field = source (see adapters.soap)
DocumentId = "header.document_id"
PackageBase64 = "package_base64"
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path

from adapters.soap import (
    DELIVERY_SOURCES,
    PROTOCOL_VERSION,
    SoapRoute,
    XRoadClient,
    XRoadService,
)
from gateway.core.config_files import read_toml
from gateway.core.errors import ConfigError
from gateway.core.resources import wsdl_dir

_FIELD_PATH = re.compile(r"[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)*")
_ROUTE_KEYS = frozenset(
    {
        "name",
        "wsdl",
        "operation",
        "wsdl_service",
        "wsdl_port",
        "endpoint",
        "timeout_s",
        "user_id",
        "protocol_version",
        "client",
        "service",
        "request",
    }
)


def load_routes(path: Path) -> dict[str, SoapRoute]:
    """Read a SOAP routes file into ``{route name: SoapRoute}``."""
    data = read_toml(path)
    entries = data.get("route", [])
    if set(data) - {"route"} or not isinstance(entries, list):
        raise ConfigError(f"{path}: only [[route]] tables are allowed", path=str(path))
    routes: dict[str, SoapRoute] = {}
    for i, entry in enumerate(entries):
        route = route_from_mapping(entry, f"route[{i}]")
        if route.name in routes:
            raise ConfigError(f"SOAP route {route.name} is listed twice", path=f"route[{i}].name")
        routes[route.name] = route
    return routes


def route_from_mapping(entry: Mapping[str, object], where: str) -> SoapRoute:
    """One route from a TOML table (or a dict of the same shape)."""
    _only(entry, _ROUTE_KEYS, where)
    wsdl = Path(_text(entry, "wsdl", where))
    timeout = entry.get("timeout_s", 30.0)
    if isinstance(timeout, bool) or not isinstance(timeout, int | float) or timeout <= 0:
        raise ConfigError(f"{where}.timeout_s must be a positive number", path=f"{where}.timeout_s")
    return SoapRoute(
        name=_text(entry, "name", where),
        wsdl=wsdl if wsdl.is_absolute() else wsdl_dir() / wsdl,
        operation=_text(entry, "operation", where),
        client=_client(_table(entry, "client", where), f"{where}.client"),
        service=_service(_table(entry, "service", where), f"{where}.service"),
        user_id=_text(entry, "user_id", where),
        request=_request(_table(entry, "request", where), f"{where}.request"),
        protocol_version=_optional(entry, "protocol_version", where) or PROTOCOL_VERSION,
        service_name=_optional(entry, "wsdl_service", where),
        port_name=_optional(entry, "wsdl_port", where),
        endpoint=_optional(entry, "endpoint", where),
        timeout_s=float(timeout),
    )


def _client(table: Mapping[str, object], where: str) -> XRoadClient:
    _only(table, {"instance", "member_class", "member_code", "subsystem"}, where)
    return XRoadClient(
        instance=_text(table, "instance", where),
        member_class=_text(table, "member_class", where),
        member_code=_text(table, "member_code", where),
        subsystem=_optional(table, "subsystem", where),
    )


def _service(table: Mapping[str, object], where: str) -> XRoadService:
    _only(
        table,
        {"instance", "member_class", "member_code", "subsystem", "service_code", "service_version"},
        where,
    )
    return XRoadService(
        instance=_text(table, "instance", where),
        member_class=_text(table, "member_class", where),
        member_code=_text(table, "member_code", where),
        service_code=_text(table, "service_code", where),
        subsystem=_optional(table, "subsystem", where),
        service_version=_optional(table, "service_version", where),
    )


def _request(table: Mapping[str, object], where: str) -> tuple[tuple[str, str], ...]:
    if not table:
        raise ConfigError(f"{where} must map at least one request field", path=where)
    mapping: list[tuple[str, str]] = []
    for name in table:
        source = _text(table, name, where)
        if source not in DELIVERY_SOURCES and not _FIELD_PATH.fullmatch(source):
            raise ConfigError(
                f"{where}.{name}: {source!r} is neither a delivery source "
                f"({', '.join(sorted(DELIVERY_SOURCES))}) nor a package field "
                "path like header.document_id",
                path=f"{where}.{name}",
            )
        mapping.append((name, source))
    return tuple(mapping)


def _only(table: Mapping[str, object], allowed: frozenset[str] | set[str], where: str) -> None:
    unknown = sorted(set(table) - allowed)
    if unknown:
        raise ConfigError(f"{where}.{unknown[0]} is not a known key", path=f"{where}.{unknown[0]}")


def _table(entry: Mapping[str, object], key: str, where: str) -> Mapping[str, object]:
    value = entry.get(key)
    if not isinstance(value, dict):
        raise ConfigError(f"{where}.{key} must be a table", path=f"{where}.{key}")
    return value


def _optional(table: Mapping[str, object], key: str, where: str) -> str | None:
    return None if table.get(key) is None else _text(table, key, where)


def _text(table: Mapping[str, object], key: str, where: str) -> str:
    value = table.get(key)
    if not isinstance(value, str) or not value.strip():
        raise ConfigError(f"{where}.{key} must be a non-empty string", path=f"{where}.{key}")
    return value
