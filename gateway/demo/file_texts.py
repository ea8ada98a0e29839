"""The demo's files as text: ``gateway.toml``, ``credentials.json`` and the SOAP routes."""

from __future__ import annotations

import json

from gateway.console.passwords import hash_password
from gateway.core.directory import hash_api_key
from gateway.demo import pki
from gateway.demo.layout import (
    ADMIN_ENTRY,
    CONSOLE_ENTRY,
    CONSOLE_USERS,
    DIRECTORY_NAME,
    GATEWAY_SYSTEM_ID,
    HEADER,
    NATIONAL_POLL_S,
    NATIONAL_SECRET_NAME,
    PKI_NAME,
    PROVINCE,
    SOAP_ROUTES_NAME,
    SOAP_SIM_ENDPOINT,
    SYSTEMS_NAME,
    DemoSetup,
)


def settings_toml(setup: DemoSetup) -> str:
    """The demo's ``gateway.toml``; paths are relative to the file's directory."""
    admin_hash = hash_api_key(setup.admin_token)
    return "\n".join(
        [
            HEADER,
            "# The participants' API keys and the admin token are in credentials.json (mode 0600).",
            "",
            "[http]",
            'host = "127.0.0.1"',
            f"port = {setup.port}",
            "",
            "[broker]",
            f"url = {toml_string(setup.broker_url)}",
            f"prefix = {toml_string(setup.broker_prefix)}",
            "",
            "[store]",
            f"url = {toml_string(setup.store_url)}",
            "",
            "[pki]",
            f"dir = {toml_string(PKI_NAME)}",
            "",
            "[directory]",
            f"path = {toml_string(DIRECTORY_NAME)}",
            "",
            "[admin]",
            "# SHA-256 of the admin API token.",
            f"api_token_hashes = [{toml_string(admin_hash)}]",
            "",
            *_console_users_toml(setup),
            "[southbound]  # the national SDK protocol for local systems (secrets: mode 0600)",
            f"systems_path = {toml_string(SYSTEMS_NAME)}",
            "",
            "[rate_limit]  # per 60 s, shared by all processes; demos and benchmarks send a lot",
            "participant_requests = 100000",
            "",
            "[push]  # push URLs may name these hosts although not public (local receivers)",
            'allow_private_hosts = ["127.0.0.1", "localhost", "::1"]',
            "",
            *_national_toml(setup),
            "[soap]",
            '# SOAP services: a participant whose delivery method is "soap" and url',
            '# "national-documents" is called through this route',
            f"# (`lgsp sim soap` serves it on {SOAP_SIM_ENDPOINT}).",
            f"routes_path = {toml_string(SOAP_ROUTES_NAME)}",
            "",
        ]
    )


def _national_toml(setup: DemoSetup) -> list[str]:
    """``[national]`` against the simulator, when the demo has one."""
    if setup.national_endpoint is None:
        return [
            "# No [national] section: national delivery is disabled, and documents to the",
            "# national platform (000.00.00.G22) are refused with routing.no_adapter.",
            "",
        ]
    return [
        "[national]  # the national platform: here `lgsp sim national` (scripts/demo starts it)",
        "enabled = true",
        f"endpoint = {toml_string(setup.national_endpoint)}",
        f"system_id = {toml_string(GATEWAY_SYSTEM_ID)}",
        f"secret_file = {toml_string(NATIONAL_SECRET_NAME)}",
        f"poll_interval_s = {NATIONAL_POLL_S}",
        "",
    ]


SOAP_ROUTES_TOML = f"""# SOAP routes (adapters/soap_routes.py); `lgsp sim soap` answers this one.
[[route]]
name = "national-documents"
wsdl = "document-service.wsdl"
operation = "ReceiveDocument"
endpoint = "{SOAP_SIM_ENDPOINT}"
user_id = "lgsp-thanhhoa"

[route.client]
instance = "VN"
member_class = "GOV"
member_code = "{PROVINCE}"
subsystem = "lgsp"

[route.service]
instance = "VN"
member_class = "GOV"
member_code = "000.00.00.G22"
subsystem = "ndxp"
service_code = "ReceiveDocument"
service_version = "v1"

[route.request]
DocumentId = "header.document_id"
Sender = "sender"
Receiver = "recipient"
Subject = "header.subject"
CodeNumber = "header.code.code_number"
CodeNotation = "header.code.code_notation"
PackageBase64 = "package_base64"
"""


def _console_users_toml(setup: DemoSetup) -> list[str]:
    """``[[admin.user]]`` tables of the web console users (argon2id hashes of their passwords)."""
    lines = ["# Web console users (/admin); their passwords are in credentials.json."]
    for name, role in CONSOLE_USERS:
        password_hash = hash_password(setup.console_passwords[name])
        lines += [
            "[[admin.user]]",
            f"username = {toml_string(name)}",
            f"password_hash = {toml_string(password_hash)}",
            f"role = {toml_string(role)}",
            "",
        ]
    return lines


def credentials_json(setup: DemoSetup) -> str:
    """``{OrganId: {"api_key", "name"}, …, "_admin": {"token"},
    "_console": {username: {"password", "role"}}}`` as JSON text."""
    names = {p.organ_id: p.name for p in pki.DEMO_PARTICIPANTS}
    data: dict[str, dict[str, str]] = {
        organ_id: {"api_key": key, "name": names[organ_id]}
        for organ_id, key in setup.api_keys.items()
    }
    for organ_id, secret in setup.national_secrets.items():  # the national SDK's credentials
        data[organ_id] |= {"system_id": organ_id, "secret": secret}
    data[ADMIN_ENTRY] = {"token": setup.admin_token}
    roles = dict(CONSOLE_USERS)
    console = {
        name: {"password": password, "role": roles[name]}
        for name, password in setup.console_passwords.items()
    }
    return json.dumps({**data, CONSOLE_ENTRY: console}, ensure_ascii=False, indent=2) + "\n"


def toml_string(value: str) -> str:
    return json.dumps(value, ensure_ascii=False)  # a JSON string is a valid TOML basic string
