"""Migration 0007_accounts upgrades a database that already has accounts in it."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

from alembic import command

from console_client import Console
from verdigris.accounts.service import hash_password
from verdigris.store.migrate import alembic_config


def test_accounts_made_before_the_migration_can_log_in(make_server: Any, tmp_path: Path) -> None:
    data_dir = tmp_path / "old"
    data_dir.mkdir()
    database = data_dir / "verdigris.sqlite3"
    command.upgrade(alembic_config(f"sqlite+aiosqlite:///{database}"), "0001_core")
    with sqlite3.connect(database) as db:
        db.execute(
            "INSERT INTO accounts (username, email, name, role, password_hash, created_ms) VALUES (?, ?, ?, ?, ?, ?)",
            (
                "veteran",
                "veteran@example.test",
                "Old Timer",
                "licensee",
                hash_password("Veteran-Pass-1"),
                1_700_000_000_000,
            ),
        )
    srv = make_server(data_dir=data_dir)
    console = Console(srv)
    assert console.login("veteran", "Veteran-Pass-1").status_code == 303
    page = console.get("/account").text
    assert "Old Timer" in page and "not confirmed" not in page and "owner" in page
    assert [e["kind"] for e in console.events()] == ["login_ok"]
