"""The hardened loader: malicious corpus, generated attacks, the real samples, huge bodies."""

from __future__ import annotations

import base64
import contextlib
import json
import os
import socket
import subprocess
import sys
import textwrap
import tomllib
import tracemalloc
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from aiohttp import ClientError, ClientSession, web
from aiohttp.test_utils import TestServer
from hypothesis import given, settings
from hypothesis import strategies as st
from lxml import etree
from samples import CONFORMANCE_DIR, CONFORMANCE_FILES, MALFORMED_SAMPLES

from gateway.core.errors import ConfigError, LimitError, PackageError
from gateway.edxml import hardened
from gateway.edxml.hardened import check_size, load_xml, read_limited
from gateway.edxml.limits import DEFAULT_LIMITS, READ_CHUNK_BYTES, ParseLimits
from gateway.edxml.model import EDXML_NS

CORPUS = Path(__file__).resolve().parent / "malicious"
EXPECTED: dict[str, dict[str, str]] = tomllib.loads(
    (CORPUS / "EXPECTED.toml").read_text(encoding="utf-8")
)
# Published malformed upstream: <edXML:From><edXML:From>… never closes the outer From, and two
# prefixes are undeclared. A hardened loader must refuse it (recovering would change the tree).
MALFORMED_CODES = dict.fromkeys(MALFORMED_SAMPLES, "edxml.malformed")
HEALTH_CHECK = CONFORMANCE_DIR / "edoc_new.edxml"
LIMIT_CODES = {
    "edxml.too_large",
    "edxml.too_deep",
    "edxml.too_many_elements",
    "edxml.too_many_attachments",
    "edxml.attachment_too_large",
}
MIB = 1024 * 1024


def plain_parse(data: bytes) -> etree._Element:
    """What a plain lxml parse makes of trusted bytes: the loader must build the same tree."""
    return etree.fromstring(data, etree.XMLParser(huge_tree=True, resolve_entities=False))


def assert_healthy() -> None:
    """After any refusal, a real package still parses, identically to a plain parse."""
    data = HEALTH_CHECK.read_bytes()
    assert etree.tostring(load_xml(data)) == etree.tostring(plain_parse(data))


def outcome(data: bytes, limits: ParseLimits = DEFAULT_LIMITS) -> str:
    """``"ok"`` if the bytes load, else the code they are refused with."""
    try:
        load_xml(data, limits)
    except PackageError as error:
        return error.code
    return "ok"


def expect_refusal(data: bytes, code: str, limits: ParseLimits = DEFAULT_LIMITS) -> PackageError:
    with pytest.raises(PackageError) as caught:
        load_xml(data, limits)
    error = caught.value
    assert error.code == code, error
    assert isinstance(error, LimitError) == (code in LIMIT_CODES)
    assert error.http_status == (413 if code in LIMIT_CODES else 400)
    assert_healthy()
    return error


def package(*, attachments: int = 0, payload_b64: str = "UEsDBA==", header: str = "") -> bytes:
    """A document package in the real layout, with ``attachments`` copies of one attachment."""
    attachment = (
        "<Attachment><ContentId>cid:{n}</ContentId><AttachmentName>f{n}.zip</AttachmentName>"
        f'<edXML:ContentTransferEncoded xmlns:edXML="{EDXML_NS}">{payload_b64}'
        "</edXML:ContentTransferEncoded></Attachment>"
    )
    encoded = "".join(attachment.format(n=n) for n in range(attachments))
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f'<edXML xmlns="{EDXML_NS}">\n'
        f'<edXML:edXMLEnvelope xmlns:edXML="{EDXML_NS}"><edXML:edXMLHeader><edXML:MessageHeader>'
        f"<edXML:From><edXML:OrganId>000.00.00.G22</edXML:OrganId></edXML:From>{header}"
        "</edXML:MessageHeader></edXML:edXMLHeader></edXML:edXMLEnvelope>\n"
        f"<AttachmentEncoded>{encoded}</AttachmentEncoded>\n</edXML>\n"
    ).encode()


def nested(levels: int, *, one_per_line: bool = False) -> bytes:
    opening = b"<a>\n" if one_per_line else b"<a>"
    return opening * levels + b"</a>" * levels


# --- the corpus -------------------------------------------------------------------------------


def test_manifest_lists_every_corpus_file_and_enough_attacks() -> None:
    on_disk = {p.name for p in CORPUS.iterdir() if p.name != "EXPECTED.toml"}
    assert on_disk == set(EXPECTED)
    refused = [name for name, entry in EXPECTED.items() if entry["code"] != "ok"]
    assert len(refused) >= 40
    assert all(
        entry["code"] == "ok" or entry["code"].startswith("edxml.") for entry in EXPECTED.values()
    )


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_corpus_file(name: str) -> None:
    data = (CORPUS / name).read_bytes()
    code = EXPECTED[name]["code"]
    if code == "ok":
        assert etree.tostring(load_xml(data)) == etree.tostring(plain_parse(data))
        assert_healthy()
    else:
        expect_refusal(data, code)


def test_whole_corpus_in_a_row_leaves_the_process_healthy() -> None:
    for name, entry in EXPECTED.items():
        assert outcome((CORPUS / name).read_bytes()) == entry["code"], name
    for path in CONFORMANCE_FILES:
        if path.name not in MALFORMED_SAMPLES:
            load_xml(path.read_bytes())


# --- the real samples -------------------------------------------------------------------------


def test_all_sixteen_conformance_packages_are_present() -> None:
    assert len(CONFORMANCE_FILES) == 16


@pytest.mark.parametrize("path", CONFORMANCE_FILES, ids=lambda p: p.name)
def test_conformance_package_loads_like_a_plain_parse(path: Path) -> None:
    data = path.read_bytes()
    if path.name in MALFORMED_SAMPLES:
        expect_refusal(data, MALFORMED_CODES[path.name])
        return
    root = load_xml(data)
    assert root.tag == f"{{{EDXML_NS}}}edXML"
    assert etree.tostring(root) == etree.tostring(plain_parse(data))


@pytest.mark.parametrize("name", ["status.edxml", "edoc_uuid_dc0bdef0.edxml"])
def test_every_cut_of_a_real_package_is_truncated(name: str) -> None:
    data = (CONFORMANCE_DIR / name).read_bytes()
    end = data.rindex(b">") + 1
    for cut in range(1, end):
        with pytest.raises(PackageError) as caught:
            load_xml(data[:cut])
        assert caught.value.code == "edxml.truncated", (cut, data[max(0, cut - 40) : cut])
    assert_healthy()


# --- generated attacks ------------------------------------------------------------------------


def test_quadratic_blowup_is_refused() -> None:
    entity = b"A" * 100_000
    data = (
        b'<?xml version="1.0"?>\n<!DOCTYPE r [<!ENTITY a "'
        + entity
        + b'">]>\n<r>'
        + b"&a;" * 50_000
        + b"</r>"
    )
    expect_refusal(data, "edxml.dtd_forbidden")


def test_billion_laughs_inside_a_real_package_is_refused() -> None:
    laughs = (CORPUS / "dtd_billion_laughs.xml").read_bytes()
    doctype = laughs[laughs.index(b"<!DOCTYPE") : laughs.index(b"]>") + 2].replace(
        b"lolz", b"edXML"
    )
    body = package(header="<edXML:Subject>&lol9;</edXML:Subject>")
    declaration_end = body.index(b"?>") + 2
    expect_refusal(body[:declaration_end] + doctype + body[declaration_end:], "edxml.dtd_forbidden")


@pytest.fixture
def listener() -> Iterator[socket.socket]:
    """A local TCP port that records whether anything connected to it."""
    server = socket.create_server(("127.0.0.1", 0))
    server.setblocking(False)
    yield server
    server.close()


def assert_nobody_connected(server: socket.socket) -> None:
    # A connect() completes in the kernel backlog even before accept(): if the loader had
    # connected, synchronously, the connection would be waiting here now.
    with pytest.raises(BlockingIOError):
        server.accept()


NETWORK_ATTACKS = {
    "external_entity": (
        '<!DOCTYPE r [<!ENTITY x SYSTEM "{url}/xxe">]><r>&x;</r>',
        "edxml.dtd_forbidden",
    ),
    "parameter_entity": (
        '<!DOCTYPE r [<!ENTITY % p SYSTEM "{url}/p.dtd"> %p;]><r/>',
        "edxml.dtd_forbidden",
    ),
    "external_subset": ('<!DOCTYPE r SYSTEM "{url}/r.dtd"><r/>', "edxml.dtd_forbidden"),
    "xinclude": (
        '<r xmlns:xi="http://www.w3.org/2001/XInclude"><xi:include href="{url}/x.xml"/></r>',
        "edxml.xinclude_forbidden",
    ),
    "stylesheet": ('<?xml-stylesheet href="{url}/x.xsl"?><r/>', "edxml.pi_forbidden"),
    "schema_location": (
        '<r xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"'
        ' xsi:schemaLocation="urn:x {url}/x.xsd"/>',
        "ok",
    ),
}


@pytest.mark.parametrize("attack", sorted(NETWORK_ATTACKS))
def test_no_network_connection_is_attempted(attack: str, listener: socket.socket) -> None:
    host, port = listener.getsockname()
    template, code = NETWORK_ATTACKS[attack]
    data = template.format(url=f"http://{host}:{port}").encode()
    if code == "ok":
        load_xml(data)
    else:
        expect_refusal(data, code)
    assert_nobody_connected(listener)


@pytest.mark.parametrize("attack", ["external_entity", "parameter_entity", "external_subset"])
def test_the_parser_itself_never_fetches(attack: str, listener: socket.socket) -> None:
    """Defence in depth: even past the DOCTYPE refusal, the parser configuration fetches nothing."""
    host, port = listener.getsockname()
    parser = etree.XMLParser(**hardened.PARSER_OPTIONS)
    parser.feed(NETWORK_ATTACKS[attack][0].format(url=f"http://{host}:{port}").encode())
    with contextlib.suppress(etree.XMLSyntaxError):
        parser.close()  # an unresolved entity may spoil the document; what matters is no fetch
    assert_nobody_connected(listener)


def test_the_parser_itself_never_reads_local_files() -> None:
    passwd = Path("/etc/passwd").read_bytes()
    parser = etree.XMLParser(**hardened.PARSER_OPTIONS)
    parser.feed(b'<!DOCTYPE r [<!ENTITY x SYSTEM "file:///etc/passwd">]><r>&x;</r>')
    root = parser.close()
    assert passwd[:16] not in etree.tostring(root)


def test_ten_thousand_levels_are_refused() -> None:
    expect_refusal(nested(10_000), "edxml.too_deep")


def test_deep_nesting_in_a_large_package_is_refused_while_parsing() -> None:
    padding = b"<pad>" + b"x" * (2 * hardened.SINGLE_FEED_MAX_BYTES) + b"</pad>"
    data = b"<r>" + padding + nested(10_000, one_per_line=True) + b"</r></broken>"
    error = expect_refusal(data, "edxml.too_deep")
    assert error.path is not None
    assert int(error.path.removeprefix("line ")) <= 1 + 2048  # the open path, never all 10,000


def test_depth_exactly_at_the_limit_loads_and_one_more_is_refused() -> None:
    load_xml(nested(DEFAULT_LIMITS.max_depth))
    expect_refusal(nested(DEFAULT_LIMITS.max_depth + 1), "edxml.too_deep")
    narrow = ParseLimits(max_depth=5)
    load_xml(nested(5), narrow)
    expect_refusal(nested(6), "edxml.too_deep", narrow)


def test_a_deep_branch_that_closes_before_the_end_is_still_refused() -> None:
    data = b"<r>" + nested(DEFAULT_LIMITS.max_depth) + b"<b/></r>"
    expect_refusal(data, "edxml.too_deep")


def test_a_million_elements_are_never_fully_built() -> None:
    # Broken at the very end: had libxml2 read that far, the answer would be edxml.malformed.
    data = b"<r>\n" + b"<a/>\n" * 1_000_000 + b"</r></broken>\n"
    error = expect_refusal(data, "edxml.too_many_elements")
    assert error.path is not None
    stopped_at_line = int(error.path.removeprefix("line "))
    # the first element too many (libxml2 may report lines past 65535 one late)
    assert stopped_at_line - (1 + DEFAULT_LIMITS.max_elements) in (0, 1)


def test_element_count_exactly_at_the_limit_loads_and_one_more_is_refused() -> None:
    few = ParseLimits(max_elements=10)
    load_xml(b"<r>" + b"<a/>" * 9 + b"</r>", few)
    expect_refusal(b"<r>" + b"<a/>" * 10 + b"</r>", "edxml.too_many_elements", few)


def test_attachment_count_at_the_limit_loads_and_one_more_is_refused() -> None:
    limit = DEFAULT_LIMITS.max_attachments
    root = load_xml(package(attachments=limit))
    assert len(root.findall(f"{{{EDXML_NS}}}AttachmentEncoded/{{{EDXML_NS}}}Attachment")) == limit
    expect_refusal(package(attachments=limit + 1), "edxml.too_many_attachments")
    expect_refusal(
        package(attachments=1), "edxml.too_many_attachments", ParseLimits(max_attachments=0)
    )


def test_attachment_size_is_estimated_from_its_base64_text() -> None:
    small = ParseLimits(max_attachment_bytes=3000)
    exact = base64.encodebytes(os.urandom(3000)).decode()  # wrapped at 76 columns, like MIME
    load_xml(package(attachments=1, payload_b64=exact), small)
    over = base64.b64encode(os.urandom(3003)).decode()
    error = expect_refusal(
        package(attachments=2, payload_b64=over), "edxml.attachment_too_large", small
    )
    assert error.path == "AttachmentEncoded/Attachment[1]"


def test_oversize_input_is_refused_before_parsing() -> None:
    body = package()
    load_xml(body, ParseLimits(max_bytes=len(body)))
    expect_refusal(body, "edxml.too_large", ParseLimits(max_bytes=len(body) - 1))
    expect_refusal(b"<" * (DEFAULT_LIMITS.max_bytes + 1), "edxml.too_large")


def test_a_twenty_megabyte_text_node_parses() -> None:
    payload = base64.b64encode(os.urandom(16 * MIB)).decode()
    root = load_xml(package(attachments=1, payload_b64=payload))
    encoded = root.find(f".//{{{EDXML_NS}}}ContentTransferEncoded")
    assert encoded is not None
    assert encoded.text == payload
    assert len(payload) > 20_000_000


MEMORY_PROBE = textwrap.dedent(
    """
    import json, resource, sys
    from gateway.edxml.hardened import load_xml
    load_xml(b"<warm-up/>")
    data = open(sys.argv[1], "rb").read()
    before_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    root = load_xml(data)
    after_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({"size": len(data), "growth": (after_kib - before_kib) * 1024}))
    """
)


def test_peak_memory_for_a_twenty_megabyte_package_stays_near_twice_its_size(
    tmp_path: Path,
) -> None:
    path = tmp_path / "big.edxml"
    path.write_bytes(
        package(attachments=1, payload_b64=base64.b64encode(os.urandom(15 * MIB)).decode())
    )
    probe = subprocess.run(
        [sys.executable, "-c", MEMORY_PROBE, str(path)],
        capture_output=True,
        check=True,
        text=True,
        cwd=Path(__file__).resolve().parents[2],
    )
    figures = json.loads(probe.stdout)
    # the bytes are already in memory; the tree adds about one copy of the text, no more
    assert figures["growth"] < 1.5 * figures["size"], figures


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=400))
def test_arbitrary_bytes_either_load_or_raise_a_package_error(data: bytes) -> None:
    code = outcome(data)
    assert code == "ok" or code.startswith("edxml.")


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_corrupted_real_packages_either_load_or_raise_a_package_error(data: st.DataObject) -> None:
    sample = bytearray((CONFORMANCE_DIR / "status.edxml").read_bytes())
    for _ in range(data.draw(st.integers(1, 4))):
        sample[data.draw(st.integers(0, len(sample) - 1))] = data.draw(st.integers(0, 255))
    code = outcome(bytes(sample))
    assert code == "ok" or code.startswith("edxml.")


# --- bodies before parsing: check_size and read_limited ---------------------------------------


class GeneratedStream:
    """A body of ``total_bytes`` made on demand (never held in memory); counts what it served."""

    def __init__(self, total_bytes: int, fill: bytes = b"<") -> None:
        self.remaining = total_bytes
        self.served = 0
        self.fill = fill

    async def read(self, n: int) -> bytes:
        size = min(n, self.remaining)
        self.remaining -= size
        self.served += size
        return self.fill * size


def test_check_size() -> None:
    check_size(None)
    check_size(DEFAULT_LIMITS.max_bytes)
    with pytest.raises(LimitError) as caught:
        check_size(DEFAULT_LIMITS.max_bytes + 1)
    assert caught.value.code == "edxml.too_large"
    with pytest.raises(PackageError) as negative:
        check_size(-1)
    assert negative.value.code == "edxml.bad_length"


@pytest.mark.parametrize(
    "limits", [DEFAULT_LIMITS, ParseLimits(max_bytes=MIB)], ids=["64MiB", "1MiB"]
)
async def test_a_200_megabyte_body_is_refused_early_with_bounded_memory(
    limits: ParseLimits,
) -> None:
    stream = GeneratedStream(200 * MIB)
    tracemalloc.start()
    try:
        with pytest.raises(LimitError) as caught:
            await read_limited(stream, limits)
        _, peak_bytes = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert caught.value.code == "edxml.too_large"
    assert stream.served <= limits.max_bytes + READ_CHUNK_BYTES
    assert peak_bytes < 1.3 * limits.max_bytes + 4 * READ_CHUNK_BYTES


async def test_a_declared_oversize_length_is_refused_before_reading() -> None:
    stream = GeneratedStream(200 * MIB)
    with pytest.raises(LimitError):
        await read_limited(stream, declared_length=200 * MIB)
    assert stream.served == 0


async def test_a_body_within_the_limit_is_returned_whole() -> None:
    body = package(attachments=3, payload_b64=base64.b64encode(os.urandom(300_000)).decode())
    served = 0

    class Body:
        async def read(self, n: int) -> bytes:
            nonlocal served
            chunk = body[served : served + n]
            served += len(chunk)
            return chunk

    received = await read_limited(Body(), ParseLimits(max_bytes=len(body)), chunk_bytes=1000)
    assert received == body
    load_xml(received)


async def test_read_limited_works_on_aiohttp_request_bodies() -> None:
    limits = ParseLimits(max_bytes=256 * 1024)
    seen: list[tuple[str, int]] = []

    class Counting:
        def __init__(self, request: web.Request) -> None:
            self.request = request
            self.read_bytes = 0

        async def read(self, n: int) -> bytes:
            chunk = await self.request.content.read(n)
            self.read_bytes += len(chunk)
            return chunk

    async def intake(request: web.Request) -> web.Response:
        body = Counting(request)
        try:
            data = await read_limited(body, limits, declared_length=request.content_length)
        except LimitError as error:
            seen.append((error.code, body.read_bytes))
            return web.json_response(error.to_problem(), status=error.http_status)
        seen.append(("ok", len(data)))
        load_xml(data)
        return web.json_response({"bytes": len(data)})

    async def endless() -> AsyncIterator[bytes]:
        for _ in range(64):  # 8 MiB, chunked: no Content-Length
            yield b"<" * (128 * 1024)

    app = web.Application()
    app.router.add_post("/intake", intake)
    async with TestServer(app) as server, ClientSession() as client:
        valid = package()
        async with client.post(server.make_url("/intake"), data=valid) as response:
            assert response.status == 200
        async with client.post(
            server.make_url("/intake"), data=b"<" * (limits.max_bytes + 1)
        ) as response:
            assert response.status == 413
            assert (await response.json())["code"] == "edxml.too_large"
        try:
            async with client.post(server.make_url("/intake"), data=endless()) as response:
                assert response.status == 413
        except ClientError:
            pass  # the server may close the connection while the client is still sending
    assert seen[0] == ("ok", len(valid))
    assert seen[1] == ("edxml.too_large", 0)  # refused on Content-Length, nothing read
    code, read_bytes = seen[2]
    assert code == "edxml.too_large"
    assert read_bytes <= limits.max_bytes + READ_CHUNK_BYTES


def test_parse_limits_must_be_positive() -> None:
    with pytest.raises(ConfigError) as caught:
        ParseLimits(max_depth=0)
    assert caught.value.code == "config.parse_limits"
    with pytest.raises(ConfigError):
        ParseLimits(max_bytes=True)
    assert ParseLimits(max_attachments=0).max_attachments == 0
