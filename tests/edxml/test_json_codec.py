"""The JSON codec: the XML codec's records, schema-validated, hardened against hostile JSON."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from jsonschema import Draft202012Validator
from samples import CONFORMANCE_DIR
from strategies import package_strategy

from gateway.core.errors import LimitError, PackageError
from gateway.core.resources import schema_path
from gateway.edxml import model
from gateway.edxml.json_codec import SCHEMA_NAME, dumps, from_json_dict, loads, to_json_dict
from gateway.edxml.limits import ParseLimits
from gateway.edxml.model import DocumentPackage, Package, StatusPackage
from gateway.edxml.xml_codec import parse_package, serialize_package

WELL_FORMED = sorted(p for p in CONFORMANCE_DIR.glob("*.edxml") if p.name != "edoc.edxml")

STATUS_JSON: dict[str, Any] = {
    "kind": "status",
    "header": {
        "from": {"organ_id": "000.00.00.H41"},
        "response_for": {"organ_id": "000.00.00.G22", "document_id": "x"},
        "status_code": "03",
    },
}


# -- conformance packages: XML -> records -> JSON -> records --------------------------------------


@pytest.mark.parametrize("path", WELL_FORMED, ids=lambda p: p.name)
def test_conformance_packages_survive_json(path: Path) -> None:
    pkg = parse_package(path.read_bytes())
    encoded = dumps(pkg)
    assert loads(encoded) == pkg
    assert from_json_dict(json.loads(encoded)) == pkg
    assert dumps(loads(encoded)) == encoded  # deterministic
    assert json.loads(encoded) == to_json_dict(pkg)


def test_json_shape_mirrors_the_dataclasses() -> None:
    pkg = parse_package((CONFORMANCE_DIR / "edoc_update.edxml").read_bytes())
    obj = to_json_dict(pkg)
    assert list(obj) == [
        "kind",
        "header",
        "trace_header_list",
        "manifest",
        "attachments",
        "signature_xml",
    ]
    assert obj["kind"] == "document"
    assert obj["header"]["from"]["organ_id"] == "000.00.00.G22"
    assert [o["organ_id"] for o in obj["header"]["to"]] == list(pkg.recipients)
    business = obj["trace_header_list"]["business"]
    assert business["business_doc_type"] == "2"
    receivers = business["business_document_info"]["receivers"]
    assert receivers == [
        {"organ_id": "000.00.00.H41", "receiver_type": "0"},
        {"organ_id": "000.00.00.H14", "receiver_type": "1"},
    ]
    assert obj["attachments"][0]["content_b64"].startswith("UEsDB")
    assert obj["signature_xml"] is not None


def test_dumps_is_compact_sorted_utf8() -> None:
    pkg = from_json_dict(
        {**STATUS_JSON, "header": {**STATUS_JSON["header"], "description": "Tiếp nhận"}}
    )
    data = dumps(pkg)
    assert "Tiếp nhận".encode() in data
    assert b"\\u" not in data
    assert b": " not in data
    keys = list(json.loads(data))
    assert keys == sorted(keys)


def test_omitted_optional_keys_take_the_record_defaults() -> None:
    pkg = from_json_dict(STATUS_JSON)
    assert isinstance(pkg, StatusPackage)
    assert pkg.header.status_code is model.StatusCode.ACCEPTANCE
    assert pkg.header.timestamp is None
    assert pkg.header.extras == ()
    assert pkg.signature_xml is None


# -- the schema and the dataclasses agree -------------------------------------------------------


def test_schema_is_valid_draft_2020_12_and_covers_every_field() -> None:
    schema = json.loads(schema_path(SCHEMA_NAME).read_bytes())
    Draft202012Validator.check_schema(schema)
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    records = {name: d for name, d in schema["$defs"].items() if "properties" in d}
    dataclass_names = {
        name
        for name, value in vars(model).items()
        if isinstance(value, type) and dataclasses.is_dataclass(value)
    }
    assert set(records) == dataclass_names
    for name, definition in records.items():
        cls = getattr(model, name)
        fields = {f.name.rstrip("_") for f in dataclasses.fields(cls)}
        if cls in (DocumentPackage, StatusPackage):
            fields.add("kind")
        assert set(definition["properties"]) == fields, name
        required = {
            f.name.rstrip("_")
            for f in dataclasses.fields(cls)
            if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
        }
        assert set(definition.get("required", ())) - {"kind"} == required, name


# -- hypothesis: any package survives the round trip -------------------------------------------


@settings(max_examples=60, deadline=None)
@given(package_strategy())
def test_any_package_survives_dumps_and_loads(pkg: Package) -> None:
    data = dumps(pkg)
    assert loads(data) == pkg
    assert dumps(loads(data)) == data


@settings(max_examples=30, deadline=None)
@given(package_strategy())
def test_one_model_two_codecs(pkg: Package) -> None:
    from_xml = parse_package(serialize_package(pkg))
    assert loads(dumps(from_xml)) == from_xml == pkg


# -- schema violations: PackageError json.schema with a JSON pointer -----------------------------


def with_header(**changes: Any) -> dict[str, Any]:
    return {**STATUS_JSON, "header": {**STATUS_JSON["header"], **changes}}


def document(**changes: Any) -> dict[str, Any]:
    return {
        "kind": "document",
        "header": {"from": {"organ_id": "000.00.00.G22"}, "to": [{"organ_id": "000.00.00.H41"}]},
        "trace_header_list": {},
        **changes,
    }


@pytest.mark.parametrize(
    ("obj", "pointer"),
    [
        ({}, "/kind"),
        ({"kind": "memo"}, "/kind"),
        ([STATUS_JSON], ""),
        ({"kind": "document"}, "/header"),
        (with_header(status_code="17"), "/header/status_code"),
        (with_header(status_code=3), "/header/status_code"),
        (with_header(response_for=None), "/header/response_for"),
        (with_header(colour="red"), "/header/colour"),
        (with_header(**{"a/b~c": 1}), "/header/a~1b~0c"),
        (with_header(description="bell\u0007"), "/header/description"),
        (with_header(description="\ud800"), "/header/description"),
        ({**STATUS_JSON, "trace_header_list": {}}, "/trace_header_list"),
        (
            document(header={"from": {"organ_id": "x"}, "to": [{}, {"organ_id": 1}]}),
            "/header/to/0/organ_id",
        ),
        (
            document(trace_header_list={"business": {"business_doc_type": "4"}}),
            "/trace_header_list/business/business_doc_type",
        ),
        (
            document(
                manifest={"references": [{"content_id": "c", "attributes": [["a", "b", "c"]]}]}
            ),
            "/manifest/references/0/attributes/0",
        ),
        (
            document(attachments=[{"content_id": "c", "content_b64": None}]),
            "/attachments/0/content_b64",
        ),
    ],
)
def test_schema_violations_name_the_offending_value(obj: Any, pointer: str) -> None:
    with pytest.raises(PackageError) as caught:
        from_json_dict(obj)
    assert caught.value.code == "json.schema"
    assert (caught.value.path or "") == pointer
    with pytest.raises(PackageError) as again:
        loads(json.dumps(obj).encode())
    assert (again.value.code, again.value.path) == ("json.schema", caught.value.path)


# -- hostile JSON -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "code"),
    [
        (b"", "json.malformed"),
        (b"{", "json.malformed"),
        (b'{"kind": "status",}', "json.malformed"),
        (b"\xff\xfe{}", "json.malformed"),
        ('{"kind": "status"}'.encode("utf-16"), "json.malformed"),
        (b'{"kind": NaN}', "json.malformed"),
        (b'{"kind": [Infinity]}', "json.malformed"),
        (b'{"kind": -Infinity}', "json.malformed"),
        (b'{"kind": ' + b"1" * 5000 + b"}", "json.malformed"),
        (b'{"kind": "status", "kind": "document"}', "json.duplicate_key"),
        (
            b'{"kind": "status", "header": {"from": {"organ_id": "a", "organ_id": "b"}}}',
            "json.duplicate_key",
        ),
    ],
)
def test_malformed_json_is_refused(data: bytes, code: str) -> None:
    with pytest.raises(PackageError) as caught:
        loads(data)
    assert caught.value.code == code
    assert not isinstance(caught.value, LimitError)


def test_size_limit() -> None:
    data = json.dumps(STATUS_JSON).encode()
    assert isinstance(loads(data, ParseLimits(max_bytes=len(data))), StatusPackage)
    with pytest.raises(LimitError) as caught:
        loads(data, ParseLimits(max_bytes=len(data) - 1))
    assert caught.value.code == "json.too_large"


@pytest.mark.parametrize("depth", [9, 100_000])
def test_depth_limit(depth: int) -> None:
    limits = ParseLimits(max_depth=8)
    nested = b"[" * (depth - 1) + b"]" * (depth - 1)
    with pytest.raises(LimitError) as caught:
        loads(b'{"kind": "status", "extra": ' + nested + b"}", limits)
    assert caught.value.code == "json.too_deep"
    shallow = b"[" * 7 + b"]" * 7  # depth 8 with the top-level object: passes, fails the schema
    with pytest.raises(PackageError) as schema:
        loads(b'{"kind": "status", "extra": ' + shallow + b"}", limits)
    assert schema.value.code == "json.schema"
