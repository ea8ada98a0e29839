"""The document-core commands through the real entry point: pki, sign, verify, inspect, builders."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from samples import CONFORMANCE_DIR

from gateway.cli import main

LGSP = str(Path(sys.executable).with_name("lgsp"))
DEPARTMENT = "000.00.04.H56"
DISTRICT = "000.00.15.H56"


@pytest.fixture(scope="module")
def pki_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    where = tmp_path_factory.mktemp("pki") / "pki"
    assert main(["pki", "init", str(where)]) == 0
    return where


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([LGSP, *args], capture_output=True, text=True, timeout=120, check=False)


def one_line_error(done: subprocess.CompletedProcess[str], code: str) -> None:
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert code in lines[0]
    assert "Traceback" not in done.stderr


def test_pki_init_writes_trust_store_and_participants(pki_dir: Path) -> None:
    assert (pki_dir / "trust" / "ca" / "root.pem").is_file()
    assert (pki_dir / "trust" / "crl" / "root.crl.pem").is_file()
    for organ_id in (
        "000.00.00.H56",
        DEPARTMENT,
        DISTRICT,
        "000.01.15.H56",
        "000.00.00.A56",
        "0101234567",
        "000.00.00.G22",
    ):
        assert (pki_dir / "participants" / organ_id / "cert.pem").is_file(), organ_id
    assert (pki_dir / "ca" / "root.key.pem").stat().st_mode & 0o077 == 0


def test_issue_sign_verify_round_trip_through_the_console_script(
    pki_dir: Path, tmp_path: Path
) -> None:
    issued = run("pki", "issue", str(pki_dir), "000.00.21.H56", "--name", "Sở Y tế")
    assert issued.returncode == 0, issued.stderr
    unsigned = tmp_path / "doc.edxml"
    made = run("new-document", "--from", "000.00.21.H56", "--to", DISTRICT, "-o", str(unsigned))
    assert made.returncode == 0, made.stderr
    signed = tmp_path / "doc.signed.edxml"
    assert (
        run(
            "sign", str(unsigned), "-o", str(signed), "--pki", str(pki_dir), "--as", "000.00.21.H56"
        ).returncode
        == 0
    )

    done = run("verify", str(signed), "--pki", str(pki_dir))

    assert done.returncode == 0, done.stderr
    assert "sender      000.00.21.H56" in done.stdout
    assert "algorithm   rsa-sha256" in done.stdout
    assert "1: CN=LGSP Demo Root CA" in done.stdout


def test_verify_failures_are_one_line_with_their_code(pki_dir: Path, tmp_path: Path) -> None:
    unsigned = tmp_path / "doc.edxml"
    assert (
        main(
            [
                "new-document",
                "--from",
                DEPARTMENT,
                "--to",
                DISTRICT,
                "--subject",
                "V/v kiểm tra",
                "-o",
                str(unsigned),
            ]
        )
        == 0
    )
    signed = tmp_path / "signed.edxml"
    assert (
        main(["sign", str(unsigned), "-o", str(signed), "--pki", str(pki_dir), "--as", DEPARTMENT])
        == 0
    )
    tampered = tmp_path / "tampered.edxml"
    tampered.write_bytes(signed.read_bytes().replace("kiểm tra".encode(), "KIỂM TRA".encode()))
    one_line_error(run("verify", str(tampered), "--pki", str(pki_dir)), "signature.digest_mismatch")

    wrong_signer = tmp_path / "wrong.edxml"
    assert (
        main(
            [
                "sign",
                str(unsigned),
                "-o",
                str(wrong_signer),
                "--pki",
                str(pki_dir),
                "--as",
                DISTRICT,
            ]
        )
        == 0
    )
    one_line_error(
        run("verify", str(wrong_signer), "--pki", str(pki_dir)), "binding.organ_mismatch"
    )


def test_conformance_placeholder_signature_fails_clearly(pki_dir: Path) -> None:
    done = run("verify", str(CONFORMANCE_DIR / "edoc_new.edxml"), "--pki", str(pki_dir))
    assert done.returncode == 1
    one_line_error(done, "signature.bad_certificate")


def test_resigning_a_conformance_package_replaces_its_signature(
    pki_dir: Path, tmp_path: Path
) -> None:
    assert main(["pki", "issue", str(pki_dir), "000.00.00.A80"]) == 0
    out = tmp_path / "resigned.edxml"
    assert (
        main(
            [
                "sign",
                str(CONFORMANCE_DIR / "edoc_new.edxml"),
                "-o",
                str(out),
                "--pki",
                str(pki_dir),
                "--as",
                "000.00.00.A80",
            ]
        )
        == 0
    )
    assert len(re.findall(rb"<Signature[\s>]", out.read_bytes())) == 1
    assert main(["verify", str(out), "--pki", str(pki_dir)]) == 0


def test_inspect_json_lists_header_and_zip_attachment(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["inspect", str(CONFORMANCE_DIR / "edoc_new.edxml"), "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["sender"] == "000.00.00.A80"
    assert summary["recipients"] == ["28.22.H17"]
    assert summary["business_doc_type"] == "new"
    [attachment] = summary["attachments"]
    assert attachment["zip"] is True
    assert attachment["name"] == "1896_QD-TTg_m_294779.doc"


def test_inspect_status_package(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["inspect", str(CONFORMANCE_DIR / "status_rejection_02.edxml")]) == 0
    out = capsys.readouterr().out
    assert "status_code        02" in out
    assert "000.00.00.G22" in out  # the status goes back to the original sender


def test_new_status_answers_the_document(
    pki_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    document = tmp_path / "doc.edxml"
    assert (
        main(
            [
                "new-document",
                "--from",
                DEPARTMENT,
                "--to",
                DISTRICT,
                "--number",
                "45",
                "-o",
                str(document),
            ]
        )
        == 0
    )
    status = tmp_path / "status.edxml"
    assert (
        main(
            [
                "new-status",
                "--for",
                str(document),
                "--from",
                DISTRICT,
                "--code",
                "3",
                "-o",
                str(status),
            ]
        )
        == 0
    )
    capsys.readouterr()
    assert main(["inspect", str(status), "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["status_code"] == "03"
    assert summary["recipients"] == [DEPARTMENT]
    assert summary["document_id"].endswith(",45/UBND-VP")


def test_json_documents_are_signed_as_jws(pki_dir: Path, tmp_path: Path) -> None:
    document = tmp_path / "doc.json"
    assert (
        main(
            [
                "new-document",
                "--from",
                DEPARTMENT,
                "--to",
                DISTRICT,
                "--format",
                "json",
                "-o",
                str(document),
            ]
        )
        == 0
    )
    token = tmp_path / "doc.jws"
    assert (
        main(["sign", str(document), "-o", str(token), "--pki", str(pki_dir), "--as", DEPARTMENT])
        == 0
    )
    assert token.read_bytes().count(b".") == 2
    assert main(["verify", str(token), "--pki", str(pki_dir)]) == 0


def test_usage_and_input_errors_are_one_line(pki_dir: Path, tmp_path: Path) -> None:
    missing = run("verify", str(tmp_path / "nope.edxml"), "--pki", str(pki_dir))
    assert missing.returncode == 2
    one_line_error(missing, "no such file")
    usage = run("verify")
    assert usage.returncode == 2
    one_line_error(usage, "lgsp: error:")
    garbage = tmp_path / "garbage.edxml"
    garbage.write_bytes(b"<edXML><unclosed>")
    broken = run("verify", str(garbage), "--pki", str(pki_dir))
    assert broken.returncode == 1
    one_line_error(broken, "edxml.truncated")
    bad_code = run(
        "new-status",
        "--for",
        str(CONFORMANCE_DIR / "edoc_new.edxml"),
        "--from",
        DISTRICT,
        "--code",
        "99",
    )
    assert bad_code.returncode == 2
    one_line_error(bad_code, "StatusCode")


def test_the_demo_script_runs(tmp_path: Path) -> None:
    script = Path(__file__).resolve().parents[2] / "scripts" / "demo-cli"
    assert shutil.which("bash")
    done = subprocess.run(
        ["bash", str(script), str(tmp_path / "demo")],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.count("OK: signature valid and trusted") == 2
