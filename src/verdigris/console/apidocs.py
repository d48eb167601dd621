"""The OpenAPI page (``/docs``) from Swagger UI files shipped in the package, so it renders on a
machine with no internet (FastAPI's default page loads them from a CDN).

Swagger UI 5.35.0 (Apache-2.0, SmartBear) is vendored from the npm package ``swagger-ui-dist``
under ``console/static/swagger-ui/`` (the bundle, the stylesheet and their licence files).
"""

from __future__ import annotations

from pathlib import Path

from fastapi.openapi.docs import get_swagger_ui_html
from starlette.responses import HTMLResponse

from verdigris.console.web import PREFIX

STATIC = Path(__file__).parent / "static"
FAVICON = STATIC / "favicon.png"


def offline_docs(openapi_url: str, title: str) -> HTMLResponse:
    assets = f"{PREFIX}/static/swagger-ui"
    return get_swagger_ui_html(
        openapi_url=openapi_url,
        title=f"{title} API",
        swagger_js_url=f"{assets}/swagger-ui-bundle.js",
        swagger_css_url=f"{assets}/swagger-ui.css",
        swagger_favicon_url=f"{PREFIX}/static/favicon.png",
        # No badge that asks the public validator about the document.
        swagger_ui_parameters={"validatorUrl": None},
    )
