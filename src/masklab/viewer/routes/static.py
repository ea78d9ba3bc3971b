"""The page: ``/`` (index.html) and ``/static/NAME`` from the package's ``viewer/static``.

The files served are listed once, when the app is built, from the package folder (regular
files, no dot files, no links); a request names one of them or gets 404, so no request path
ever reaches the file system. Until the page exists, ``/`` answers a placeholder.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, HTTPException
from fastapi.responses import FileResponse, HTMLResponse, Response

STATIC_DIR = Path(__file__).resolve().parent.parent / "static"
CONTENT_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".mjs": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".json": "application/json",
    ".svg": "image/svg+xml",
    ".png": "image/png",
    ".ico": "image/x-icon",
    ".woff2": "font/woff2",
    ".txt": "text/plain; charset=utf-8",
}
HEADERS = {"Cache-Control": "no-cache", "X-Content-Type-Options": "nosniff"}
PLACEHOLDER = """<!doctype html>
<html lang="en"><meta charset="utf-8"><title>masklab viewer</title>
<body><h1>masklab viewer</h1>
<p>The page is not installed in this copy of masklab. The API answers at
<a href="/api/datasets">/api/datasets</a>.</p></body></html>
"""


def static_files(folder: Path = STATIC_DIR) -> dict[str, Path]:
    """The files the app may serve: relative POSIX name -> path, known types only."""
    if not folder.is_dir():
        return {}
    out: dict[str, Path] = {}
    for path in sorted(folder.rglob("*")):
        rel = path.relative_to(folder)
        if (
            path.is_symlink()
            or not path.is_file()
            or any(p.startswith(".") for p in rel.parts)
            or path.suffix.lower() not in CONTENT_TYPES
        ):
            continue
        out[rel.as_posix()] = path
    return out


def make_router(files: dict[str, Path]) -> APIRouter:
    """Routes for ``/`` and ``/static/{name}`` over this allow-list."""
    router = APIRouter(tags=["page"])

    def serve(name: str) -> FileResponse:
        path = files.get(name)
        if path is None:
            raise HTTPException(404, "no such file in the viewer's page")
        kind = CONTENT_TYPES[path.suffix.lower()]
        return FileResponse(path, media_type=kind, headers=HEADERS)

    @router.get("/", include_in_schema=False)
    def index() -> Response:
        """The page (a placeholder until static/index.html exists)."""
        if "index.html" in files:
            return serve("index.html")
        return HTMLResponse(PLACEHOLDER, headers=HEADERS)

    @router.get("/static/{name:path}", include_in_schema=False)
    def static(name: str) -> FileResponse:
        """One file of the page, by its name in the allow-list."""
        return serve(name)

    return router
