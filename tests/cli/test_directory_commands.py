"""``lgsp directory import|export`` on a real store: the TOML file in, the store's directory out,
every change audited, a dry run changing nothing."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from pathlib import Path

import pytest
from directory_kit import stored_directory
from sqlalchemy import select

from gateway.cli import main
from gateway.core.directory import Directory, dump_directory, load_directory, write_directory
from gateway.demo.layout import DemoSetup
from gateway.demo.setup import init_demo
from gateway.store import DeliveryLog
from gateway.store.tables import console_audit


@pytest.fixture
def demo(tmp_path: Path, store_url: str) -> DemoSetup:
    return init_demo(tmp_path / "site", store_url=store_url)


async def lgsp(capsys: pytest.CaptureFixture[str], *args: str | Path) -> tuple[int, str, str]:
    capsys.readouterr()
    code = await asyncio.to_thread(main, [str(a) for a in args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


async def audit_actions(store_url: str) -> list[str]:
    log = await DeliveryLog.open(store_url)
    try:
        async with log.engines.reader.connect() as conn:
            rows = await conn.execute(select(console_audit.c.action).order_by(console_audit.c.id))
            return [row.action for row in rows]
    finally:
        await log.aclose()


async def test_import_then_export_round_trips_the_directory(
    demo: DemoSetup, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = str(demo.config_path)
    code, _, err = await lgsp(capsys, "directory", "export", "--config", config)
    assert code == 2
    assert err.startswith("lgsp: config.directory_missing: the store has no participant directory")

    code, out, _ = await lgsp(capsys, "directory", "import", "--config", config)

    on_file = load_directory(demo.directory_path)
    assert code == 0
    assert out.startswith(f"imported {demo.directory_path}: {len(on_file)} added, 0 changed, ")
    assert "within 2 s" in out
    code, out, _ = await lgsp(capsys, "directory", "export", "--config", config)
    assert code == 0
    assert out == dump_directory(on_file)
    exported = tmp_path / "exported.toml"
    code, out, _ = await lgsp(capsys, "directory", "export", "--config", config, "-o", exported)
    assert code == 0
    assert exported.read_text(encoding="utf-8") == dump_directory(on_file)
    assert await audit_actions(demo.store_url) == ["directory.import"]


async def test_an_edited_file_is_previewed_then_imported_or_merged(
    demo: DemoSetup, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = str(demo.config_path)
    assert (await lgsp(capsys, "directory", "import", "--config", config))[0] == 0
    first, second, *rest = load_directory(demo.directory_path)
    edited = tmp_path / "edited.toml"
    write_directory(edited, Directory([replace(first, name="Đổi tên"), *rest]))  # second gone

    code, out, _ = await lgsp(
        capsys, "directory", "import", str(edited), "--config", config, "--dry-run"
    )

    assert code == 0
    assert out.splitlines()[:3] == [
        f"would change {edited}: 0 added, 1 changed, 1 removed, {len(rest)} unchanged",
        f"  changed {first.organ_id}",
        f"  removed {second.organ_id}",
    ]
    assert second.organ_id in await stored_directory(demo.store_url)  # nothing changed

    code, out, _ = await lgsp(
        capsys, "directory", "import", str(edited), "--config", config, "--merge"
    )
    assert code == 0
    merged = await stored_directory(demo.store_url)
    assert second.organ_id in merged  # --merge keeps what the file does not list
    assert merged.get(first.organ_id) == replace(first, name="Đổi tên")

    code, out, _ = await lgsp(capsys, "directory", "import", str(edited), "--config", config)
    assert code == 0
    assert "0 changed, 1 removed" in out
    assert second.organ_id not in await stored_directory(demo.store_url)
    assert await audit_actions(demo.store_url) == [
        "directory.import",
        "directory.merge",
        "directory.import",
    ]


async def test_a_file_with_a_bad_entry_is_refused_whole(
    demo: DemoSetup, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = str(demo.config_path)
    assert (await lgsp(capsys, "directory", "import", "--config", config))[0] == 0
    bad = tmp_path / "bad.toml"
    bad.write_text(
        demo.directory_path.read_text(encoding="utf-8") + '\n[[participant]]\nname = "no id"\n',
        encoding="utf-8",
    )

    code, _, err = await lgsp(capsys, "directory", "import", str(bad), "--config", config)

    assert code == 2
    assert "organ_id" in err
    assert len(await stored_directory(demo.store_url)) == len(load_directory(demo.directory_path))
