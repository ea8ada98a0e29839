"""The participant form: a directory entry to form fields, and the fields back to an entry."""

from __future__ import annotations

from collections.abc import Mapping

from gateway.core.directory import DEFAULT_ALGORITHMS, Participant

LIST_FIELDS = (
    "allowed_algorithms",
    "may_send_to",
    "may_speak_for",
    "signing_cert_fingerprints",
    "client_cert_fingerprints",
)
TEXT_FIELDS = ("organ_id", "name", "kind", "level", "parent", "delivery_method", "delivery_url")


def form_values(p: Participant | None) -> dict[str, str | bool]:
    """What the form shows for ``p`` (a new participant when None); lists one per line."""
    if p is None:
        return {
            "organ_id": "",
            "name": "",
            "kind": "state",
            "level": "",
            "parent": "",
            "delivery_method": "mailbox",
            "delivery_url": "",
            "allowed_algorithms": "\n".join(DEFAULT_ALGORITHMS),
            "may_send_to": "",
            "may_speak_for": "",
            "signing_cert_fingerprints": "",
            "client_cert_fingerprints": "",
            "enabled": True,
        }
    return {
        "organ_id": p.organ_id,
        "name": p.name,
        "kind": p.kind.value,
        "level": p.level.value if p.level else "",
        "parent": p.parent or "",
        "delivery_method": p.delivery.method.value,
        "delivery_url": p.delivery.url or "",
        "allowed_algorithms": "\n".join(p.allowed_algorithms),
        "may_send_to": "\n".join(p.may_send_to or ()),
        "may_speak_for": "\n".join(p.may_speak_for),
        "signing_cert_fingerprints": "\n".join(p.signing_cert_fingerprints),
        "client_cert_fingerprints": "\n".join(p.client_cert_fingerprints),
        "enabled": p.enabled,
    }


def posted_values(form: Mapping[str, object]) -> dict[str, str | bool]:
    """The submitted fields as the form shows them again (on an error)."""
    values: dict[str, str | bool] = {}
    for name in (*TEXT_FIELDS, *LIST_FIELDS):
        value = form.get(name)
        values[name] = value.strip() if isinstance(value, str) else ""
    values["enabled"] = form.get("enabled") == "on"
    return values


def _lines(text: str | bool) -> list[str]:
    return [line.strip() for line in str(text).replace(",", "\n").splitlines() if line.strip()]


def directory_entry(
    values: Mapping[str, str | bool], existing: Participant | None
) -> dict[str, object]:
    """A directory entry (as in participants.toml) from the form; keys the form does not show
    (the API key hashes) are kept from ``existing``."""
    entry: dict[str, object] = {
        "organ_id": values["organ_id"],
        "name": values["name"],
        "kind": values["kind"],
        "enabled": bool(values["enabled"]),
        "delivery": {"method": values["delivery_method"]},
    }
    for key in ("level", "parent"):
        if values[key]:
            entry[key] = values[key]
    if values["delivery_url"]:
        entry["delivery"] = {"method": values["delivery_method"], "url": values["delivery_url"]}
    for key in LIST_FIELDS:
        if _lines(values[key]) or key == "may_speak_for":
            entry[key] = _lines(values[key])
    if existing is not None:
        entry["api_key_hashes"] = list(existing.api_key_hashes)
    return entry
