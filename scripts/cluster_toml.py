"""The deployment's ``gateway.toml``: the demo's settings with the three broker nodes and more.

``lgsp demo init`` writes the settings of one gateway; ``deployment_toml`` sets ``broker.url``
to the list of the cluster's nodes (a client tries them in order and fails over to the next) and
any ``section.key`` given (TOML values as text), keeping the file's comments.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence

# Settings every deployment gets (the caller's win): a killed gateway's unpublished deliveries
# are relayed by the other one within seconds, and the national poller does not sleep for minutes
# after the simulator was down.
DEPLOYMENT_SETTINGS = {
    "broker.outbox_interval_s": "2.0",
    "broker.outbox_age_s": "5.0",
    "national.max_backoff_s": "10.0",
}


def set_key(text: str, section: str, key: str, value: str) -> str:
    """``text`` with ``key = value`` in ``[section]`` (replaced if there, else added first)."""
    lines = text.splitlines()
    header = re.compile(rf"^\[{re.escape(section)}\]\s*(#.*)?$")
    start = next((i for i, line in enumerate(lines) if header.match(line)), None)
    if start is None:
        return text.rstrip("\n") + f"\n\n[{section}]\n{key} = {value}\n"
    end = next(
        (i for i in range(start + 1, len(lines)) if lines[i].startswith("[")),
        len(lines),
    )
    assign = re.compile(rf"^{re.escape(key)}\s*=")
    for i in range(start + 1, end):
        if assign.match(lines[i]):
            lines[i] = f"{key} = {value}"
            break
    else:
        lines.insert(start + 1, f"{key} = {value}")
    return "\n".join(lines) + "\n"


def toml_list(values: Sequence[str]) -> str:
    return "[" + ", ".join(json.dumps(v) for v in values) + "]"


def deployment_toml(text: str, urls: Sequence[str], settings: Mapping[str, str]) -> str:
    """The demo's settings ``text`` with the broker nodes ``urls`` and ``settings``."""
    text = set_key(text, "broker", "url", toml_list(urls) if len(urls) > 1 else json.dumps(urls[0]))
    for dotted, value in {**DEPLOYMENT_SETTINGS, **settings}.items():
        section, _, key = dotted.partition(".")
        text = set_key(text, section, key, value)
    return text
