"""The web console: static files from gateway/console/ at /console, `/` redirecting there, and
`/docs`, the OpenAPI document as a page.

No build step and nothing fetched from elsewhere (the page works offline): the browser loads
index.html, style.css and app.js (a module) from the gateway, and app.js calls the same JSON
APIs any client does, with the key the person signed in with as its Bearer token. The files
are read once, at startup; they ship as package data (pyproject.toml).
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from gateway.errors import GatewayError
from gateway.surfaces.http import with_errors

FOLDER = Path(__file__).resolve().parent.parent / "console"
MEDIA_TYPES = {".html": "text/html; charset=utf-8", ".js": "text/javascript; charset=utf-8",
               ".css": "text/css; charset=utf-8", ".svg": "image/svg+xml"}
# Only the gateway's own scripts, styles and API; pictures and videos may also come from
# blob: URLs (downloads made with the Bearer header) and from https: result links (Ark's,
# when a task is not archived).
CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
       "img-src 'self' blob: data: https:; media-src 'self' blob: https:; "
       "base-uri 'none'; form-action 'none'; frame-ancestors 'none'")
_COMMON = {"content-security-policy": CSP, "x-content-type-options": "nosniff",
           "referrer-policy": "no-referrer", "x-frame-options": "DENY"}


def _load() -> dict[str, tuple[bytes, str, str]]:
    """name -> (body, media type, etag) for every file the console ships."""
    files = {}
    for path in sorted(FOLDER.iterdir()) if FOLDER.is_dir() else []:
        if path.suffix in MEDIA_TYPES and path.is_file():
            body = path.read_bytes()
            etag = '"' + hashlib.sha256(body).hexdigest()[:16] + '"'
            files[path.name] = (body, MEDIA_TYPES[path.suffix], etag)
    return files


def routes() -> list[Route]:
    files = _load()

    def serve(name: str, request: Request) -> Response:
        found = files.get(name)
        if found is None:
            raise GatewayError(404, "NotFound", f"No route for GET {request.url.path}.")
        body, media_type, etag = found
        # The page is never cached, so a new release's page names its assets at once; the
        # assets may be kept an hour and are revalidated by ETag after that.
        cache = "no-store" if name.endswith(".html") else "public, max-age=3600"
        headers = {**_COMMON, "cache-control": cache, "etag": etag}
        if request.headers.get("if-none-match") == etag:
            return Response(status_code=304, headers=headers)
        return Response(b"" if request.method == "HEAD" else body, headers=headers,
                        media_type=media_type)

    async def index(request: Request) -> Response:
        return serve("index.html", request)

    async def asset(request: Request) -> Response:
        return serve(request.path_params["name"], request)

    async def api_docs(request: Request) -> Response:
        return serve("docs.html", request)  # /openapi.json, readable by people

    async def root(request: Request) -> Response:
        return RedirectResponse("/console", 307)

    return [
        Route("/", root, methods=["GET", "HEAD"]),
        Route("/console", with_errors("native", index), methods=["GET", "HEAD"]),
        Route("/console/", with_errors("native", index), methods=["GET", "HEAD"]),
        Route("/console/{name}", with_errors("native", asset), methods=["GET", "HEAD"]),
        Route("/docs", with_errors("native", api_docs), methods=["GET", "HEAD"]),
    ]
