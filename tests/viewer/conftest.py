"""Fixtures of the viewer's browser tests: stores, a live server, headless Chromium.

The browser is Debian's Chromium (``/usr/bin/chromium``, installed by ``scripts/chromium.sh``,
which ``make test`` runs), driven by Playwright; Playwright's own browser download is never
used. Without Chromium (or Playwright) the browser tests skip, saying how to get it; under
``CI=true`` they fail instead, so CI never goes green by skipping the viewer.

- ``demo_home``: the demo store (``masklab demo``'s COCO file imported as ``demo:v1``,
  published, and its child ``demo:v2``, a draft), built once per session.
- ``serve``: ``serve(store, writable=False)`` -> base URL of ``create_app(store)`` run by
  uvicorn in a thread on 127.0.0.1, a free port; stopped at teardown.
- ``browser_context``: a Playwright persistent context on a fresh ``--user-data-dir``;
  ``page``: a new page in it per test.
- ``screenshots``: the folder screenshots go to: ``$MASKLAB_TEST_OUTPUT/screenshots`` when
  that variable is set, else ``tmp_path_factory``'s ``screenshots`` folder.
- Benchmark mode: ``MASKLAB_VIEWER_BENCH=1`` makes the many-instances test open a
  3840x2160 frame with 200 instances (``benchmarks/bench_viewer.py``'s scene) and write the
  page's timing to ``screenshots/../viewer_open.json``; otherwise it checks a small scene.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import sys
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from pathlib import Path
from types import ModuleType
from typing import Any, NoReturn

import pytest

from masklab.store import Store

CHROMIUM = "/usr/bin/chromium"
BENCH_ENV = "MASKLAB_VIEWER_BENCH"
OUTPUT_ENV = "MASKLAB_TEST_OUTPUT"
BENCH_FILE = Path(__file__).resolve().parents[2] / "benchmarks" / "bench_viewer.py"


def in_ci() -> bool:
    """True where env CI says so (CI=true, as CI services set it)."""
    return os.environ.get("CI", "").lower() not in ("", "0", "false", "no")


def unavailable(why: str) -> NoReturn:
    """Skip a browser test (fail it under CI, where a skip would hide the viewer)."""
    message = (
        f"headless Chromium not available: {why}; run `make test` (scripts/chromium.sh "
        "installs Debian's chromium) or `apt-get install -y chromium`"
    )
    if in_ci():
        pytest.fail(f"{message} (CI=true: the browser tests may not skip)", pytrace=False)
    pytest.skip(message)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "browser: drives headless Chromium through Playwright")


@pytest.fixture(scope="session")
def bench() -> ModuleType:
    """benchmarks/bench_viewer.py: the many-instances scene, server and browser helpers."""
    spec = importlib.util.spec_from_file_location("bench_viewer", BENCH_FILE)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("bench_viewer", module)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="session")
def bench_mode() -> bool:
    """MASKLAB_VIEWER_BENCH=1: open the 4K frame with 200 instances and record the time."""
    return os.environ.get(BENCH_ENV, "") not in ("", "0")


@pytest.fixture(scope="session")
def output_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """$MASKLAB_TEST_OUTPUT, else a session temporary folder."""
    env = os.environ.get(OUTPUT_ENV)
    path = Path(env) if env else tmp_path_factory.mktemp("viewer-output")
    path.mkdir(parents=True, exist_ok=True)
    return path


@pytest.fixture(scope="session")
def screenshots(output_dir: Path) -> Path:
    """Where the browser tests write their screenshots (one PNG per page)."""
    path = output_dir / "screenshots"
    path.mkdir(parents=True, exist_ok=True)
    return path


@pytest.fixture(scope="session")
def demo_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A store home holding the demo: demo:v1 (published) and demo:v2 (draft child)."""
    from masklab.demo import RLE_FILE, run_demo
    from masklab.demo_store import run_store_demo

    out = tmp_path_factory.mktemp("viewer-demo")
    run_demo(out)
    result = run_store_demo(out / "home", out / RLE_FILE, out)
    assert not result.problems, result.problems
    return out / "home"


@pytest.fixture
def demo_store(demo_home: Path) -> Iterator[Store]:
    """The demo store, read-only by convention (the tests that write use a copy)."""
    with Store(home=demo_home) as store:
        yield store


@pytest.fixture
def demo_store_copy(demo_home: Path, tmp_path: Path) -> Iterator[Store]:
    """A private copy of the demo store, for tests that write to it."""
    home = tmp_path / "demo-home"
    shutil.copytree(demo_home, home)
    with Store(home=home) as store:
        yield store


@pytest.fixture
def serve(bench: ModuleType) -> Iterator[Callable[..., str]]:
    """serve(store, writable=False) -> base URL of the viewer over `store` (per test)."""
    pytest.importorskip("fastapi", reason="the viewer needs FastAPI: pip install -e '.[dev]'")
    pytest.importorskip("uvicorn", reason="the viewer needs uvicorn: pip install -e '.[dev]'")
    with ExitStack() as stack:

        def start(store: Store, *, writable: bool = False) -> str:
            base: str = stack.enter_context(bench.serve(store, writable=writable))
            return base

        yield start


@pytest.fixture(scope="session")
def browser_context(bench: ModuleType, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """Headless Chromium (Debian's) under Playwright, on a fresh user-data-dir."""
    if importlib.util.find_spec("playwright") is None:
        unavailable("Playwright is not installed (pip install -e '.[dev]')")
    if not Path(CHROMIUM).exists():
        unavailable(f"{CHROMIUM} is missing")
    with bench.chromium(tmp_path_factory.mktemp("chromium-profile")) as context:
        context.set_default_timeout(10_000)
        yield context


#: answers the page expects and shows itself (a bad query, a refused write)
EXPECTED_STATUS = ("status of 400", "status of 403", "status of 409")


@pytest.fixture
def page(browser_context: Any) -> Iterator[Any]:
    """A new page; a script error or an unexpected failed request fails the test."""
    p = browser_context.new_page()
    errors: list[str] = []

    def on_console(msg: Any) -> None:
        if msg.type == "error" and not any(s in msg.text for s in EXPECTED_STATUS):
            errors.append(f"console error: {msg.text}")

    p.on("pageerror", lambda err: errors.append(f"page error: {err}"))
    p.on("console", on_console)
    yield p
    p.close()
    assert not errors, errors
