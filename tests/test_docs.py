"""Docs generated from code must match the code."""

from __future__ import annotations

from pathlib import Path

from verdigris.greenapi.compat import render

ROOT = Path(__file__).resolve().parents[1]


def test_compatibility_table_is_current() -> None:
    committed = (ROOT / "docs" / "compatibility.md").read_text()
    assert committed == render(), "run: python -m verdigris.greenapi.compat > docs/compatibility.md"


def test_cloud_methods_are_wire_methods() -> None:
    from verdigris.channels.whatsapp_cloud.channel import METHODS
    from verdigris.greenapi.registry import REGISTRY

    names = {spec.name for spec in REGISTRY.values() if spec.done}
    assert METHODS <= names, f"not wire methods: {sorted(METHODS - names)}"


def test_every_setting_is_documented() -> None:
    from verdigris.config import Settings

    text = (ROOT / "docs" / "configuration.md").read_text()
    missing = [name for name in Settings.model_fields if f"VERDIGRIS_{name.upper()}" not in text]
    assert not missing, f"document these in docs/configuration.md: {missing}"
