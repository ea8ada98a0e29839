"""The national platform connection from the ``[national]`` settings: the secret and the client."""

from __future__ import annotations

from adapters.national.client import NationalClient
from gateway.core.errors import ConfigError
from gateway.core.settings import NationalSettings


def read_secret(conf: NationalSettings) -> str:
    """The HMAC secret: ``secret``, or the first line of ``secret_file``."""
    if conf.secret_file is None:
        return conf.secret
    try:
        text = conf.secret_file.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(
            f"cannot read national.secret_file {conf.secret_file}: {exc.strerror}",
            code="config.unreadable",
            path="national.secret_file",
        ) from exc
    secret = text.strip().splitlines()[0].strip() if text.strip() else ""
    if not secret:
        raise ConfigError(
            f"national.secret_file {conf.secret_file} is empty",
            code="config.invalid",
            path="national.secret_file",
        )
    return secret


def national_client(conf: NationalSettings) -> NationalClient:
    """A client for this gateway's system on the platform (the caller closes it)."""
    return NationalClient(
        conf.endpoint, conf.system_id, read_secret(conf), timeout_s=conf.timeout_s
    )
