"""``masklab view``: serve the web viewer over a store, on 127.0.0.1 unless told otherwise.

The store is ``$MASKLAB_HOME`` (``--home DIR``), or ``--store URL``: a catalog database URL
(``sqlite:///PATH``, ``postgresql+psycopg://...``; blobs from ``--blobs`` or
``MASKLAB_BLOBS``) or a store folder. Read-only unless ``--writable`` (then the page may
save label colours of draft versions). FastAPI and uvicorn are imported only when the
command runs: ``pip install "masklab[viewer]"``.
"""

from __future__ import annotations

import ipaddress
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from masklab.cli.app import _fail, _reported, _stderr, _stdout, app
from masklab.cli.store import Home

if TYPE_CHECKING:
    from masklab.store import Store

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8765
_INSTALL = 'the viewer needs FastAPI and uvicorn: pip install "masklab[viewer]"'


def is_loopback(host: str) -> bool:
    """True for names of this machine only (``127.0.0.0/8``, ``::1``, ``localhost``).

    >>> is_loopback("127.0.0.1"), is_loopback("localhost"), is_loopback("0.0.0.0")
    (True, True, False)
    """
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def address(host: str, port: int) -> str:
    """The URL to open (IPv6 literals bracketed).

    >>> address("::1", 8765)
    'http://[::1]:8765/'
    """
    shown = f"[{host}]" if ":" in host and not host.startswith("[") else host
    return f"http://{shown}:{port}/"


def open_view_store(home: Path | None, store_url: str | None, blobs: str | None) -> Store:
    """The store ``--store URL`` (a catalog URL or a folder), else ``--home``/the default."""
    from masklab.store import Store

    if store_url is None:
        return Store(home=home, blobs=blobs)
    if "://" in store_url:
        return Store(home=home, catalog=store_url, blobs=blobs)
    return Store(home=Path(store_url), blobs=blobs)


def server_config(app_: Any, *, host: str, port: int) -> Any:
    """The uvicorn configuration ``masklab view`` serves with (tests inspect it)."""
    import uvicorn

    return uvicorn.Config(app_, host=host, port=port, log_level="warning", server_header=False)


def serve(config: Any) -> None:
    """Run the server until interrupted (Ctrl+C)."""
    import uvicorn

    uvicorn.Server(config).run()


@app.command()
def view(
    ctx: typer.Context,
    home: Home = None,
    store_url: Annotated[
        str | None,
        typer.Option(
            "--store",
            metavar="URL",
            help="Catalog URL (sqlite:///..., postgresql+psycopg://...) or a store folder.",
        ),
    ] = None,
    blobs: Annotated[
        str | None,
        typer.Option("--blobs", metavar="URL", help=r"Blob location \[default: MASKLAB_BLOBS]."),
    ] = None,
    host: Annotated[
        str, typer.Option("--host", help="Interface to listen on; another only when asked.")
    ] = DEFAULT_HOST,
    port: Annotated[int, typer.Option("--port", min=1, max=65535, help="TCP port.")] = DEFAULT_PORT,
    writable: Annotated[
        bool, typer.Option("--writable", help="Let the page save label colours (drafts only).")
    ] = False,
) -> None:
    """Browse the store in a web page: datasets, versions, frames with masks, diffs."""
    try:
        from masklab.viewer import create_app
    except ImportError:
        _fail(_INSTALL)
    try:
        import uvicorn  # noqa: F401
    except ImportError:
        _fail(_INSTALL)
    with _reported(ctx):
        store = open_view_store(home, store_url, blobs)
        local = is_loopback(host)
        web = create_app(store, writable=writable, allowed_hosts=None if local else ["*"])
        config = server_config(web, host=host, port=port)
    mode = "writable: the page may save label colours" if writable else "read-only"
    _stdout().print(
        f"masklab viewer on {address(host, port)} ({mode}); Ctrl+C stops it", highlight=False
    )
    if not local:
        _stderr().print(
            f"warning: listening on {host}, not only this machine: anyone who can reach it "
            "can read the store" + (" and change it" if writable else ""),
            highlight=False,
        )
    try:
        serve(config)
    finally:
        store.close()
