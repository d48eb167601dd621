"""The Alembic migrations: one head, and databases from earlier releases upgrade with their data."""

from __future__ import annotations

from alembic.script import ScriptDirectory

from verdigris.store.migrate import alembic_config


def test_the_migrations_have_exactly_one_head() -> None:
    # Two heads mean two migrations revise the same parent: a new migration must revise the head.
    heads = ScriptDirectory.from_config(alembic_config("sqlite://")).get_heads()
    assert len(heads) == 1, f"several Alembic heads: {sorted(heads)}; add a merge revision"
