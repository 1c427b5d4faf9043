"""/docs (Swagger UI) and /redoc (ReDoc) with their assets served by the API itself.

FastAPI's own pages load Swagger UI and ReDoc from a CDN (and ReDoc's fonts from Google), so
they are blank on a network without internet. The assets come from the `fastapi-offline`
package (MIT; it vendors swagger-ui-dist and ReDoc's standalone bundle) and are mounted at
DOCS_ASSETS; FastAPI's HTML helpers are pointed at them.
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

from fastapi import FastAPI
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.staticfiles import StaticFiles

DOCS_ASSETS = "/docs-assets"
ASSET_DIR = Path(str(files("fastapi_offline") / "static"))


def install_docs(app: FastAPI) -> None:
    """Add /docs, /redoc and their assets to an app built with docs_url=None, redoc_url=None."""
    app.mount(DOCS_ASSETS, StaticFiles(directory=ASSET_DIR), name="docs-assets")
    spec = app.openapi_url or "/openapi.json"
    swagger_html = get_swagger_ui_html(
        openapi_url=spec,
        title=f"{app.title} - Swagger UI",
        swagger_js_url=f"{DOCS_ASSETS}/swagger-ui-bundle.js",
        swagger_css_url=f"{DOCS_ASSETS}/swagger-ui.css",
        swagger_favicon_url=f"{DOCS_ASSETS}/favicon.png",
    )
    redoc_html = get_redoc_html(
        openapi_url=spec,
        title=f"{app.title} - ReDoc",
        redoc_js_url=f"{DOCS_ASSETS}/redoc.standalone.js",
        redoc_favicon_url=f"{DOCS_ASSETS}/favicon.png",
        with_google_fonts=False,  # ReDoc's default fonts come from Google
    )
    # built once: the pages depend on nothing but the app's title and spec URL
    app.get("/docs", include_in_schema=False)(lambda: swagger_html)
    app.get("/redoc", include_in_schema=False)(lambda: redoc_html)
