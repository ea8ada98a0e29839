"""``lgsp demo clean``: a demo's broker queues and generated files removed."""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

from gateway.core.errors import ConfigError, UnavailableError
from gateway.demo.layout import CONFIG_NAME, GENERATED, HEADER


@dataclass(frozen=True, slots=True)
class Cleaned:
    """What ``clean_demo`` removed."""

    dir: Path
    removed: tuple[str, ...]
    broker_prefix: str | None  # None: the broker was left alone
    dir_removed: bool


def demo_config(dir: Path) -> Path:
    """``dir/gateway.toml`` if ``lgsp demo init`` wrote it; else ``config.not_a_demo``."""
    config = dir.resolve() / CONFIG_NAME
    try:
        first = config.read_text(encoding="utf-8").splitlines()[:1]
    except OSError as exc:
        raise ConfigError(
            f"{dir.resolve()} holds no demo ({config}: {exc.strerror})",
            code="config.not_a_demo",
            path=str(config),
        ) from exc
    if first != [HEADER]:
        raise ConfigError(
            f"{config} was not written by `lgsp demo init`: not touching it",
            code="config.not_a_demo",
            path=str(config),
        )
    return config


async def clean_demo(dir: Path, *, broker: bool = True) -> Cleaned:
    """Delete the demo's broker queues and exchange (its own prefix), then the files and
    directories ``init_demo`` generated in ``dir`` (and ``dir`` itself when left empty)."""
    from gateway.broker import Broker  # noqa: PLC0415 (only this command talks to the broker)
    from gateway.broker.messages import METHODS  # noqa: PLC0415
    from gateway.core.settings import load_settings  # noqa: PLC0415

    config = demo_config(dir)
    root = config.parent
    prefix = None
    if broker:
        conf = load_settings(config).broker
        try:
            connected = await Broker.connect(
                conf.urls,
                prefix=conf.prefix,
                methods=METHODS,
                retry_delays_s=conf.retry_delays_s,
                connect_timeout_s=10,
            )
        except UnavailableError as exc:
            raise UnavailableError(
                f"cannot reach the broker to delete the demo's queues ({exc.message}); start "
                "it, or pass --keep-broker",
                code="unavailable.broker",
            ) from exc
        async with connected:
            await connected.delete_topology()
        prefix = conf.prefix
    removed = []
    for name in GENERATED:
        path = root / name
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        elif path.exists() or path.is_symlink():
            path.unlink()
        else:
            continue
        removed.append(name)
    dir_removed = not any(root.iterdir())
    if dir_removed:
        root.rmdir()
    return Cleaned(root, tuple(removed), prefix, dir_removed)
