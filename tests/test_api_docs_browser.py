"""/docs renders with no internet (issue 13, item 5): Swagger UI comes from the package.

The browser aborts every request that does not go to the server itself, and the page must still
list the operations; the favicon is served too.
"""

from __future__ import annotations

import shutil
from typing import Any

import httpx
import pytest

from harness import CHROMIUM, Server

pytestmark = pytest.mark.skipif(shutil.which(CHROMIUM) is None, reason="chromium is not installed")


def test_the_api_docs_render_without_the_internet(server: Server, browser: Any) -> None:
    from playwright.sync_api import expect

    context = browser.new_context(viewport={"width": 1100, "height": 900})
    outside: list[str] = []

    def only_this_server(route: Any) -> None:
        if route.request.url.startswith(server.url + "/"):
            route.continue_()
        else:
            outside.append(route.request.url)
            route.abort()

    context.route("**/*", only_this_server)
    page = context.new_page()
    page.goto(server.url + "/docs")
    expect(page.locator(".swagger-ui .info .title")).to_contain_text("Verdigris")
    # Swagger UI renders the operations of the tags in view; scroll down to the wire API's.
    tags: set[str] = set()
    found = page.locator(".opblock-summary-path", has_text="sendMessage")
    for _ in range(200):
        tags.update(page.locator(".opblock-tag").all_inner_texts())
        if found.count():
            break
        page.mouse.wheel(0, 600)
        page.wait_for_timeout(50)
    expect(found.first).to_be_visible()
    assert {"operations", "sandbox"} <= tags and len(tags) > 4, tags
    assert outside == [], outside
    context.close()

    icon = httpx.get(server.url + "/favicon.ico")
    assert icon.status_code == 200 and icon.headers["content-type"] == "image/png"
    page_html = httpx.get(server.url + "/docs").text
    assert "cdn" not in page_html.lower() and "https://" not in page_html.split("<body>")[0]
