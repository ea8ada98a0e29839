"""Masking the secret-bearing parts of URLs (passwords, secret query parameters) for display.

``mask_url`` changes only what it masks: a URL without secrets comes back unchanged, byte for
byte. ``mask_urls_in`` does the same for every URL inside a longer text (a log message).
"""

from __future__ import annotations

import re

MASK = "***"
_URL = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://[^\s\"'<>]+")
_AUTHORITY = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*://)([^/?#]*)")
_QUERY_PARAM = re.compile(r"([?&;])([^=&#;]+)=([^&#;]*)")
# A query parameter whose name contains one of these carries a secret (password=, sslpassword=,
# access_token=, api_key=, X-Amz-Signature=, client_secret=, auth=, …).
SECRET_PARAM_PARTS = ("pass", "pwd", "secret", "token", "key", "sig", "auth", "credential")


def _secret_param(name: str) -> bool:
    lowered = name.lower()
    return any(part in lowered for part in SECRET_PARAM_PARTS)


def mask_url(url: str) -> str:
    """``url`` with the password of its user info and its secret query values as ``***``."""
    masked = _AUTHORITY.sub(_mask_authority, url, count=1)
    head, mark, tail = masked.partition("?")
    if not mark:
        return masked
    query, hash_mark, fragment = tail.partition("#")
    query = _QUERY_PARAM.sub(_mask_param, "?" + query)[1:]
    return f"{head}?{query}{hash_mark}{fragment}"


def _mask_authority(match: re.Match[str]) -> str:
    scheme, authority = match.group(1), match.group(2)
    userinfo, at, host = authority.rpartition("@")
    if not at:
        return match.group(0)
    user, colon, password = userinfo.partition(":")
    return f"{scheme}{user}:{MASK}@{host}" if colon and password else match.group(0)


def _mask_param(match: re.Match[str]) -> str:
    sep, name, value = match.groups()
    return f"{sep}{name}={MASK}" if value and _secret_param(name) else match.group(0)


def mask_urls_in(text: str) -> str:
    """``text`` with every URL in it masked as ``mask_url`` does."""
    if "://" not in text:
        return text
    return _URL.sub(lambda m: mask_url(m.group(0)), text)
