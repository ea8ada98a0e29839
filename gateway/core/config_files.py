"""Reading the TOML files of the configuration: the one place their errors become ConfigError."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

from gateway.core.errors import ConfigError


def read_toml(path: Path) -> dict[str, Any]:
    """The parsed TOML file, or ``ConfigError`` (``config.unreadable`` / ``config.syntax``)."""
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(
            f"cannot read {path}: {exc.strerror}", code="config.unreadable", path=str(path)
        ) from exc
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(
            f"{path} is not valid TOML: {exc}", code="config.syntax", path=str(path)
        ) from exc
