"""Shared fixtures: a real server for the whole session, and fresh ones on demand."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from harness import CHROMIUM, Server, cheap_password_hashes


def pytest_configure(config: pytest.Config) -> None:
    cheap_password_hashes()  # for the servers and CLI commands run in this process


# Marks of the longest tests (a child-process server killed and restarted, a browser walk, the fuzzer).
_LONG = ("slow", "subprocess", "browser")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Browser tests are marked ``browser`` (scripts/test --fast leaves them out). Files holding the
    longest tests run first: the parallel workers (``--dist loadfile``) take files in this order, and
    a long file taken last would keep one worker busy after the others are done."""
    for item in items:
        if "browser" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.browser)
    rank: dict[Any, int] = {}
    for item in items:
        marks = [i for i, mark in enumerate(_LONG) if item.get_closest_marker(mark)]
        rank[item.path] = min([rank.get(item.path, len(_LONG)), *marks])
    items.sort(key=lambda item: rank[item.path])  # stable: the order within a file stays


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """One server shared by tests that do not change global state."""
    srv = Server(tmp_path_factory.mktemp("server")).start()
    yield srv
    srv.stop()
    srv.drop_database()


@pytest.fixture
def make_server(tmp_path: Path) -> Iterator[Callable[..., Server]]:
    """Start fresh servers (own data dir) for tests that restart, kill or reconfigure them.

    ``make_server(env={...})`` runs the application in this process; ``make_server(subprocess=True)``
    runs ``verdigris serve`` as a child process, for tests that ``kill()`` it or read its log.
    """
    started: list[Server] = []

    def make(env: dict[str, str] | None = None, data_dir: Path | None = None, **kwargs: Any) -> Server:
        srv = Server(data_dir or tmp_path / f"srv{len(started)}", env=env or {}, **kwargs).start()
        started.append(srv)
        return srv

    yield make
    for srv in started:
        srv.stop()
    for srv in started:
        srv.drop_database()


@pytest.fixture
def browser() -> Iterator[Any]:
    """Playwright driving Debian's chromium (headless)."""
    from playwright.sync_api import expect, sync_playwright

    expect.set_options(timeout=30_000)  # pages refresh themselves every few seconds; be patient under load

    with sync_playwright() as p:
        chromium = p.chromium.launch(
            executable_path=CHROMIUM,
            headless=True,
            args=["--no-sandbox", "--disable-background-networking", "--disable-gpu"],
        )
        yield chromium
        chromium.close()
