"""``create_app(store)``: the viewer's FastAPI app over one store.

Nothing is built at import: each call makes a new app with its own state (store, whether it
may write, a thumbnail cache). Around the routes, three guards:

* the ``Host`` header must name this machine (``127.0.0.1``, ``localhost``, ``[::1]``)
  unless ``allowed_hosts`` says otherwise, so a web page that rebinds its DNS name to
  127.0.0.1 cannot read the store through the visitor's browser;
* request bodies over ``max_body`` bytes (64 KiB) answer 413, whether announced by
  Content-Length or streamed;
* API paths are routed on the raw, still percent-encoded path, so an id holding ``/`` or
  ``%2e%2e`` stays one segment (decoded once by :func:`masklab.viewer.deps.segment`).

>>> import tempfile
>>> from masklab.store import Store
>>> store = Store(home=tempfile.mkdtemp())
>>> app = create_app(store)
>>> sorted(p for p in app.openapi()["paths"] if p.startswith("/api/datasets"))
['/api/datasets', '/api/datasets/{dataset}/versions']
>>> store.close()
"""

from __future__ import annotations

from collections.abc import Sequence
from urllib.parse import quote_from_bytes

from fastapi import FastAPI, HTTPException, Request
from fastapi.responses import JSONResponse
from starlette.middleware.trustedhost import TrustedHostMiddleware
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from masklab.errors import MaskLabError, NotFoundError, PublishedVersionError
from masklab.store import Store
from masklab.viewer.deps import ViewerState
from masklab.viewer.routes import datasets, diff, static, versions

__all__ = [
    "LOOPBACK_HOSTS",
    "MAX_BODY",
    "BodyLimit",
    "RawApiPath",
    "SecurityHeaders",
    "create_app",
]

MAX_BODY = 64 * 1024
LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "[::1]")
_RAW_SAFE = "/%:@!$&'()*+,;=-._~"  # kept as they are; other bytes are percent-encoded
_HEADERS = [
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
]
_HEADER_NAMES = {name for name, _ in _HEADERS}


def create_app(
    store: Store,
    *,
    writable: bool = False,
    allowed_hosts: Sequence[str] | None = None,
    max_body: int = MAX_BODY,
) -> FastAPI:
    """The viewer over ``store``; it writes (label colours) only when ``writable``.

    ``allowed_hosts``: the names clients may reach it by (``Host`` header, port aside);
    default :data:`LOOPBACK_HOSTS`, ``["*"]`` for any (serving another interface).
    """
    app = FastAPI(
        title="masklab viewer",
        docs_url=None,
        redoc_url=None,
        openapi_url="/api/openapi.json",
    )
    app.state.viewer = ViewerState(store=store, writable=writable)
    app.include_router(datasets.router)
    app.include_router(versions.router)
    app.include_router(diff.router)
    app.include_router(static.make_router(static.static_files()))
    app.add_exception_handler(NotFoundError, _not_found)
    app.add_exception_handler(PublishedVersionError, _published)
    app.add_exception_handler(MaskLabError, _masklab_error)
    app.add_middleware(RawApiPath)
    app.add_middleware(BodyLimit, max_bytes=max_body)
    app.add_middleware(
        TrustedHostMiddleware,
        allowed_hosts=list(allowed_hosts if allowed_hosts is not None else LOOPBACK_HOSTS),
        www_redirect=False,
    )
    app.add_middleware(SecurityHeaders)
    return app


async def _not_found(request: Request, exc: Exception) -> JSONResponse:
    return JSONResponse({"detail": str(exc.args[0]) if exc.args else "not found"}, 404)


async def _published(request: Request, exc: Exception) -> JSONResponse:
    return JSONResponse({"detail": str(exc)}, 409)


async def _masklab_error(request: Request, exc: Exception) -> JSONResponse:
    return JSONResponse({"detail": str(exc)}, 500)


class RawApiPath:
    """Route ``/api/...`` on the raw path: ``%2F`` in an id stays inside its segment.

    ASGI servers hand the app a decoded ``path`` (``a%2Fb`` -> ``a/b``, which would split a
    frame id in two) and the bytes as sent in ``raw_path``; under ``/api/`` the path is
    replaced by the raw one (non-ASCII bytes percent-encoded), and the routes decode each
    segment themselves.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        raw = scope.get("raw_path")
        if scope["path"].startswith("/api/") and raw:
            scope = {**scope, "path": quote_from_bytes(raw, safe=_RAW_SAFE)}
        await self.app(scope, receive, send)


class SecurityHeaders:
    """Every response says ``nosniff``, may not be framed, and sends no referrer."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = [h for h in message.get("headers", []) if h[0] not in _HEADER_NAMES]
                message = {**message, "headers": [*headers, *_HEADERS]}
            await send(message)

        await self.app(scope, receive, send_with_headers)


class BodyLimit:
    """Answer 413 to a request body over ``max_bytes`` (announced or streamed)."""

    def __init__(self, app: ASGIApp, max_bytes: int = MAX_BODY) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers", [])).get(b"content-length")
        if declared is not None:
            text = declared.decode("latin-1").strip()
            if not text.isdigit():
                await JSONResponse({"detail": "bad Content-Length"}, 400)(scope, receive, send)
                return
            if int(text) > self.max_bytes:
                await self._too_large(scope, receive, send)
                return
        seen = 0

        async def limited() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:
                    raise HTTPException(413, self._detail())
            return message

        await self.app(scope, limited, send)

    def _detail(self) -> str:
        return f"request body over {self.max_bytes} bytes"

    async def _too_large(self, scope: Scope, receive: Receive, send: Send) -> None:
        await JSONResponse({"detail": self._detail()}, 413)(scope, receive, send)
