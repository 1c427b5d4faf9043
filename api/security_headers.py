"""Security headers on every response: no MIME sniffing, never framed, and a Content-Security-
Policy fitted to what the response is.

- /ui (the web page): its own script and stylesheet only, no inline script or style; pictures
  from the API or blob: URLs (page pictures are fetched with the API key, then shown).
- /docs, /redoc and their assets: FastAPI's pages start Swagger UI and ReDoc with an inline
  script, so they get only `frame-ancestors 'none'`.
- everything else (JSON, results, archives, page pictures): `default-src 'none'` and `sandbox`,
  so a stored file opened in a browser (an hOCR page, say) runs nothing as our origin.

A pure ASGI middleware: it only adds headers to the response's start, so streams (SSE, large
files) pass through untouched.
"""

from __future__ import annotations

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.docs_pages import DOCS_ASSETS

UI_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' blob: data:; "
    "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
DOCS_POLICY = "frame-ancestors 'none'"
API_POLICY = "default-src 'none'; frame-ancestors 'none'; sandbox"
_DOCS_PATHS = ("/docs", "/redoc", "/openapi.json")


def policy_for(path: str) -> str:
    """The Content-Security-Policy of a response to `path` (the app's path, prefix removed)."""
    if path == "/ui" or path.startswith("/ui/"):
        return UI_POLICY
    if path in _DOCS_PATHS or path.startswith(DOCS_ASSETS + "/"):
        return DOCS_POLICY
    return API_POLICY


class SecurityHeaders:
    """Adds nosniff, X-Frame-Options: DENY and the path's CSP to every HTTP response."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = scope["path"]
        root = scope.get("root_path", "")
        if root and path.startswith(root):
            path = path[len(root) :]
        policy = policy_for(path)

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                headers.setdefault("X-Content-Type-Options", "nosniff")
                headers.setdefault("X-Frame-Options", "DENY")
                headers.setdefault("Content-Security-Policy", policy)
            await send(message)

        await self.app(scope, receive, send_with_headers)
