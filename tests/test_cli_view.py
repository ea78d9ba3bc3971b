"""``masklab view``: the address it prints, the interface and port it serves on, the store it
opens, read-only unless asked; and the real server (uvicorn, in a thread) on 127.0.0.1."""

from __future__ import annotations

import sys
import threading
import time
import warnings
from urllib.parse import quote

import httpx
import pytest
from typer.testing import CliRunner

from masklab.cli import app
from masklab.cli import view as view_cli
from masklab.store import Frame, Store

runner = CliRunner()


@pytest.fixture
def served(monkeypatch):
    """Run ``masklab view`` without serving: the uvicorn config it would serve, captured."""
    configs = []
    monkeypatch.setattr(view_cli, "serve", configs.append)
    return configs


def make_store(home) -> None:
    with Store(home=home) as store:
        v = store.create_dataset("pets").create_version("v1")
        v.add_frames([Frame.single("cats/tom 1", None, width=4, height=3)])
        v.commit()


def datasets_of(config) -> list[dict]:
    """GET /api/datasets of the configured app, in-process."""
    with warnings.catch_warnings():  # starlette 1.x prefers httpx2 and says so on import
        warnings.simplefilter("ignore")
        from fastapi.testclient import TestClient

    return TestClient(config.app, base_url="http://127.0.0.1").get("/api/datasets").json()


def test_view_serves_127_0_0_1_port_8765_read_only_by_default(served, tmp_path):
    make_store(tmp_path)
    result = runner.invoke(app, ["view", "--home", str(tmp_path)])
    assert result.exit_code == 0, result.output
    (config,) = served
    assert (config.host, config.port) == ("127.0.0.1", 8765)
    assert config.app.state.viewer.writable is False
    assert "http://127.0.0.1:8765/" in result.stdout
    assert "read-only" in result.stdout
    assert datasets_of(config) == [{"name": "pets", "versions": 1}]


def test_view_takes_host_port_and_writable_and_warns_off_loopback(served, tmp_path):
    result = runner.invoke(
        app, ["view", "--home", str(tmp_path), "--host", "0.0.0.0", "--port", "9001", "--writable"]
    )
    assert result.exit_code == 0, result.output
    (config,) = served
    assert (config.host, config.port) == ("0.0.0.0", 9001)
    assert config.app.state.viewer.writable is True
    assert "http://0.0.0.0:9001/" in result.stdout
    assert "warning: listening on 0.0.0.0" in result.stderr


def test_view_opens_the_store_of_a_catalog_url(served, tmp_path):
    make_store(tmp_path / "elsewhere")
    url = f"sqlite:///{tmp_path / 'elsewhere' / 'catalog.db'}"
    result = runner.invoke(app, ["view", "--store", url, "--blobs", str(tmp_path / "blobs")])
    assert result.exit_code == 0, result.output
    assert datasets_of(served[0]) == [{"name": "pets", "versions": 1}]


def test_view_opens_a_store_folder_given_as_store(served, tmp_path):
    make_store(tmp_path / "folder")
    result = runner.invoke(app, ["view", "--store", str(tmp_path / "folder")])
    assert result.exit_code == 0, result.output
    assert datasets_of(served[0]) == [{"name": "pets", "versions": 1}]


@pytest.mark.parametrize("port", ["0", "65536", "http"])
def test_view_refuses_a_bad_port(served, port):
    result = runner.invoke(app, ["view", "--port", port])
    assert result.exit_code == 2
    assert served == []


def test_view_without_the_extra_says_what_to_install(served, monkeypatch):
    for name in [
        m for m in sys.modules if m == "masklab.viewer" or m.startswith("masklab.viewer.")
    ]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "fastapi", None)  # import fastapi -> ImportError
    result = runner.invoke(app, ["view"])
    assert result.exit_code == 1
    assert 'pip install "masklab[viewer]"' in result.stderr
    assert served == []


def test_the_server_listens_on_loopback_and_keeps_slashes_in_ids(tmp_path):
    """The real thing: uvicorn on 127.0.0.1 (a free port), a frame id holding '/' and ' '."""
    make_store(tmp_path)
    import uvicorn

    from masklab.viewer import create_app

    with Store(home=tmp_path) as store:
        config = view_cli.server_config(create_app(store), host="127.0.0.1", port=0)
        server = uvicorn.Server(config)
        thread = threading.Thread(target=server.run, daemon=True)
        thread.start()
        try:
            deadline = time.monotonic() + 20
            while not server.started:
                assert thread.is_alive(), "the server stopped while starting"
                assert time.monotonic() < deadline, "the server did not start"
                time.sleep(0.02)
            host, port = server.servers[0].sockets[0].getsockname()[:2]
            assert host == "127.0.0.1"
            fid = quote("cats/tom 1", safe="")
            r = httpx.get(f"http://127.0.0.1:{port}/api/versions/pets/v1/frames/{fid}")
            assert r.status_code == 200
            assert r.json()["id"] == "cats/tom 1"
            assert "server" not in r.headers  # no server banner
        finally:
            server.should_exit = True
            thread.join(timeout=20)
