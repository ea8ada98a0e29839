"""Data files shipped in the package, found through ``importlib.resources`` (wheel or checkout).

The schemas (``schemas/``: edXML XSD and JSON Schema, OpenAPI, the SOAP WSDLs), the console's
templates and static files, and the default configuration travel inside the wheel as package
data. lxml, zeep and aiohttp's static routes need file-system paths, so a resource must be a real
file or directory: true of every wheel and editable install (a zipped package is refused clearly).
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version
from importlib.resources import files
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import Final

from gateway.core.errors import ConfigError

SCHEMAS: Final = "schemas"
CONSOLE: Final = "gateway.console"
CORE: Final = "gateway.core"
DEFAULT_CONFIG_NAME: Final = "default-gateway.toml"
DISTRIBUTION: Final = "lgsp-gateway"


def resource(package: str, *parts: str) -> Traversable:
    """``parts`` below the directory of the importable ``package``."""
    found = files(package)
    for part in parts:
        found = found / part
    return found


def resource_path(package: str, *parts: str) -> Path:
    """The same as a file-system path; ``config.resource_missing`` if it is not one on disk."""
    found = resource(package, *parts)
    if not isinstance(found, Path) or not found.exists():
        name = "/".join((package.replace(".", "/"), *parts))
        raise ConfigError(
            f"packaged resource {name} is missing (broken installation?)",
            code="config.resource_missing",
        )
    return found


def schema_path(name: str) -> Path:
    """A file of ``schemas/``: ``edxml.xsd``, ``edxml.schema.json``, ``openapi.json``."""
    return resource_path(SCHEMAS, name)


def wsdl_dir() -> Path:
    """``schemas/wsdl``: the SOAP services' WSDLs and the schemas they import."""
    return resource_path(SCHEMAS, "wsdl")


def console_static_dir() -> Path:
    """The console's CSS and JavaScript."""
    return resource_path(CONSOLE, "static")


def default_config_text() -> str:
    """The annotated default ``gateway.toml`` (every key with its built-in default)."""
    return resource(CORE, DEFAULT_CONFIG_NAME).read_text(encoding="utf-8")


def distribution_version() -> str:
    """The installed ``lgsp-gateway`` version (``unknown`` when run from an uninstalled tree)."""
    try:
        return version(DISTRIBUTION)
    except PackageNotFoundError:
        return "unknown"
