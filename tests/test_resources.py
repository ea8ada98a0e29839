"""Packaged data through importlib.resources: present, complete in the wheel's package-data, used.

``scripts/check-wheel`` proves the same on a real wheel installed outside the repository.
"""

from __future__ import annotations

import subprocess
import sys
import tomllib
from importlib.metadata import version
from pathlib import Path

import pytest

from gateway.cli import main
from gateway.console.render import build_templates
from gateway.core import resources
from gateway.core.errors import ConfigError
from gateway.core.settings import load_settings

REPO = Path(__file__).resolve().parent.parent
LGSP = Path(sys.executable).parent / "lgsp"


def test_every_resource_the_code_reads_is_found() -> None:
    for name in ("edxml.xsd", "edxml.schema.json", "openapi.json"):
        assert resources.schema_path(name).is_file(), name
    assert (resources.wsdl_dir() / "document-service.wsdl").is_file()
    assert (resources.console_static_dir() / "console.css").is_file()
    templates = build_templates()  # through the package loader: every template compiles
    names = templates.list_templates()
    assert {"base.html", "login.html", "dashboard.html"} <= set(names)
    for name in names:
        assert templates.get_template(name).filename, name


def test_a_missing_resource_is_a_config_error_naming_it() -> None:
    with pytest.raises(ConfigError) as caught:
        resources.schema_path("no-such.xsd")
    assert caught.value.code == "config.resource_missing"
    assert "schemas/no-such.xsd" in caught.value.message


def _packaged(package_dir: Path, patterns: list[str]) -> set[Path]:
    return {p for pattern in patterns for p in package_dir.glob(pattern) if p.is_file()}


def test_package_data_covers_every_data_file() -> None:
    """A file added to schemas/ or the console's templates or static files must reach the wheel."""
    data = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))
    package_data = data["tool"]["setuptools"]["package-data"]
    packaged = _packaged(REPO / "gateway", package_data["gateway"])
    packaged |= _packaged(REPO / "schemas", package_data["schemas"])
    on_disk = {p for p in (REPO / "schemas").rglob("*") if p.is_file() and p.suffix != ".py"}
    for sub in ("templates", "static"):
        on_disk |= {p for p in (REPO / "gateway" / "console" / sub).rglob("*") if p.is_file()}
    on_disk.add(REPO / "gateway" / "core" / resources.DEFAULT_CONFIG_NAME)
    on_disk = {p for p in on_disk if "__pycache__" not in p.parts}
    assert on_disk - packaged == set()


def test_the_packaged_default_config_is_the_repositorys_and_holds_the_defaults(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert main(["config", "default"]) == 0
    printed = capsys.readouterr().out
    assert printed == (REPO / "config" / "gateway.toml").read_text(encoding="utf-8"), (
        "config/gateway.toml changed: copy it to gateway/core/default-gateway.toml"
    )
    assert printed == resources.default_config_text()

    (tmp_path / "gateway.toml").write_text(printed, encoding="utf-8")
    monkeypatch.chdir(tmp_path)  # without a file, relative defaults resolve against the cwd
    assert load_settings(tmp_path / "gateway.toml", env={}) == load_settings(None, env={})


def test_version_is_the_installed_distributions() -> None:
    done = subprocess.run(
        [str(LGSP), "--version"], capture_output=True, text=True, timeout=60, check=False
    )
    assert (done.returncode, done.stderr) == (0, "")
    assert done.stdout == f"lgsp {version('lgsp-gateway')}\n"
    assert resources.distribution_version() == version("lgsp-gateway")
