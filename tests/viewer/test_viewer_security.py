"""The viewer serves the store's data through its own routes and nothing else.

Requests are sent as raw ASGI calls where the path must reach the app unnormalised (``..``
segments, which HTTP clients remove), with the path decoded as uvicorn decodes it; the rest
through TestClient. A secret file lies beside the store: no request may return it.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import io
import json
import warnings
from pathlib import Path
from urllib.parse import quote, unquote

import numpy as np
import pytest
from PIL import Image

from masklab.core.labels import LabelMap
from masklab.store import Frame, Store
from masklab.store.model import blob_uri
from masklab.viewer import create_app

with warnings.catch_warnings():  # starlette 1.x prefers httpx2 and says so on import
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient

SECRET = "TOPSECRET-not-store-data"
KIB64 = 64 * 1024


def png() -> bytes:
    buf = io.BytesIO()
    Image.fromarray(np.full((4, 6, 3), 200, np.uint8)).save(buf, "PNG")
    return buf.getvalue()


@pytest.fixture
def world(tmp_path):
    """A store under tmp/home, a secret file beside it; sec:v1 (draft) holds a frame, a
    frame whose id looks like a path to the secret, and one whose source URI is the secret
    file itself (not an image); sec:v0 is published."""
    secret = tmp_path / "secret.txt"
    secret.write_text(SECRET)
    store = Store(home=tmp_path / "home")
    ds = store.create_dataset("sec")
    v0 = ds.create_version("v0")
    v0.set_label_map(LabelMap.from_names(["bg", "thing"], background=0))
    v0.publish()
    v1 = ds.create_version("v1", parent="v0")
    image = blob_uri(store.blobs.put(png()))
    v1.add_frames(
        [
            Frame.single("frame", image, width=6, height=4),
            Frame.single("../../../../secret.txt", image, width=6, height=4),
            Frame.single("text", str(secret)),
        ]
    )
    v1.commit()
    yield store, secret
    store.close()


def client(store: Store, **kw) -> TestClient:
    return TestClient(create_app(store, **kw), base_url="http://127.0.0.1:8765")


def raw_request(
    app, method: str, raw_path: str, *, body: list[bytes] = (), headers=(), host="127.0.0.1:8765"
) -> tuple[int, bytes]:
    """One request through the ASGI app exactly as written: ``raw_path`` is not normalised;
    ``path`` is its percent-decoding, as uvicorn passes it. ``body`` is sent in chunks,
    without Content-Length unless ``headers`` give one."""
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": unquote(raw_path),
        "raw_path": raw_path.encode("ascii"),
        "query_string": b"",
        "root_path": "",
        "headers": [(b"host", host.encode()), *headers],
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 8765),
    }
    chunks = [{"type": "http.request", "body": c, "more_body": True} for c in body]
    chunks.append({"type": "http.request", "body": b"", "more_body": False})
    sent: list[dict] = []

    async def receive():
        return chunks.pop(0) if chunks else {"type": "http.disconnect"}

    async def send(message):
        sent.append(message)

    # a thread of its own: the browser tests' Playwright may run an event loop in this one
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        pool.submit(asyncio.run, app(scope, receive, send)).result()
    status = next(m["status"] for m in sent if m["type"] == "http.response.start")
    return status, b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")


# ---- path traversal and malformed ids, in every path parameter

VALID = {"d": "sec", "v": "v1", "a": "v0", "b": "v1", "f": "frame", "s": "default"}
TEMPLATES = [
    "/api/datasets/{d}/versions",
    "/api/versions/{d}/{v}/frames",
    "/api/versions/{d}/{v}/frames/{f}",
    "/api/versions/{d}/{v}/frames/{f}/thumbnail",
    "/api/versions/{d}/{v}/frames/{f}/sources/{s}/image",
    "/api/diff/{d}/{a}/{b}/frames/{f}",
]
CASES = [(t, p) for t in TEMPLATES for p in VALID if "{" + p + "}" in t]


def payloads(secret: Path) -> list[str]:
    """Path segments (as sent: percent-encoded where it says so) that are no id of ours."""
    return [
        "..",
        ".",
        "%2e%2e",
        "%2E%2E",
        "..%2f..%2f..%2fsecret.txt",
        "%2e%2e%2f%2e%2e%2fsecret.txt",
        "..%5c..%5csecret.txt",
        "%252e%252e%252fsecret.txt",
        "%2Fetc%2Fpasswd",
        quote(str(secret), safe=""),
        "file%3A%2F%2F" + quote(str(secret), safe=""),
        "%00",
        "frame%00",
        "%0a",
        "%ff%fe",
        "%c0%ae%c0%ae",
        "x" * 5000,
        "~",
        "*",
    ]


@pytest.mark.parametrize(("template", "param"), CASES, ids=lambda x: str(x))
def test_traversal_and_malformed_ids_answer_404(world, template, param):
    store, secret = world
    app = create_app(store)
    assert raw_request(app, "GET", template.format(**VALID))[0] == 200  # the valid request
    for payload in payloads(secret):
        status, body = raw_request(app, "GET", template.format(**{**VALID, param: payload}))
        assert status == 404, (payload, body[:200])
        assert SECRET.encode() not in body
        assert "detail" in json.loads(body)


def test_static_files_come_from_the_allow_list_only(world):
    store, secret = world
    app = create_app(store)
    for path in [
        "/static/../app.py",
        "/static/%2e%2e/app.py",
        "/static/..%2f..%2fdeps.py",
        "/static/" + quote(str(secret), safe=""),
        "/static//etc/passwd",
        "/static/%00",
        "/static/",
    ]:
        status, body = raw_request(app, "GET", path)
        assert status == 404, path
        assert SECRET.encode() not in body
        assert b"create_app" not in body


def test_an_id_that_looks_like_a_path_names_a_frame_not_a_file(world):
    store, _ = world
    c = client(store)
    fid = quote("../../../../secret.txt", safe="")
    frame = c.get(f"/api/versions/sec/v1/frames/{fid}").json()
    assert frame["id"] == "../../../../secret.txt"
    image = c.get(frame["sources"][0]["image"])
    assert image.content == png()


def test_a_source_uri_that_is_no_image_is_not_served(world):
    store, _ = world
    c = client(store)
    for path in ["/sources/default/image", "/thumbnail"]:
        r = c.get("/api/versions/sec/v1/frames/text" + path)
        assert r.status_code == 415
        assert SECRET not in r.text


@pytest.mark.parametrize(
    "path",
    [
        "/api/datasets/nope/versions",
        "/api/versions/nope/v1/frames",
        "/api/versions/sec/nope/frames",
        "/api/versions/sec/v1/frames/nope",
        "/api/versions/sec/v1/frames/nope/thumbnail",
        "/api/versions/sec/v1/frames/frame/sources/nope/image",
        "/api/diff/sec/v0/nope/frames/frame",
        "/api/diff/sec/v0/v1/frames/nope",
        "/api/nothing",
        "/nothing",
    ],
)
def test_unknown_ids_answer_404_json(world, path):
    r = client(world[0]).get(path)
    assert r.status_code == 404
    assert r.json()["detail"]


# ---- writes


def colors(store: Store, ref: str) -> list[tuple[int, int, int]]:
    return [lab.color for lab in store.version(ref).label_map]


def test_writes_answer_403_unless_writable(world):
    store, _ = world
    before = colors(store, "sec:v1")
    c = client(store)
    for ref in ("v1", "v0", "nope"):
        r = c.put(f"/api/versions/sec/{ref}/colors", json={"colors": {"1": [1, 2, 3]}})
        assert r.status_code == 403
    assert colors(store, "sec:v1") == before


def test_writes_to_a_published_version_answer_409(world):
    store, _ = world
    before = colors(store, "sec:v0")
    r = client(store, writable=True).put(
        "/api/versions/sec/v0/colors", json={"colors": {"1": [1, 2, 3]}}
    )
    assert r.status_code == 409
    assert colors(store, "sec:v0") == before


def body_of(size: int) -> bytes:
    """A valid colours body of exactly ``size`` bytes (padded with spaces)."""
    text = json.dumps({"colors": {"1": [1, 2, 3]}}).encode()
    return text + b" " * (size - len(text))


@pytest.mark.parametrize("writable", [False, True])
def test_a_body_over_64_kib_answers_413(world, writable):
    store, _ = world
    r = client(store, writable=writable).put(
        "/api/versions/sec/v1/colors",
        content=body_of(KIB64 + 1),
        headers={"content-type": "application/json"},
    )
    assert r.status_code == 413


def test_a_streamed_body_over_64_kib_answers_413_and_writes_nothing(world):
    store, _ = world
    before = colors(store, "sec:v1")
    body = body_of(KIB64 + 10)
    status, _ = raw_request(
        create_app(store, writable=True),
        "PUT",
        "/api/versions/sec/v1/colors",
        body=[body[i : i + 8192] for i in range(0, len(body), 8192)],
        headers=[(b"content-type", b"application/json")],
    )
    assert status == 413
    assert colors(store, "sec:v1") == before


def test_a_body_of_exactly_64_kib_is_accepted(world):
    store, _ = world
    r = client(store, writable=True).put(
        "/api/versions/sec/v1/colors",
        content=body_of(KIB64),
        headers={"content-type": "application/json"},
    )
    assert r.status_code == 200
    assert colors(store, "sec:v1")[1] == (1, 2, 3)


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("POST", "/api/datasets"),
        ("DELETE", "/api/datasets/sec/versions"),
        ("DELETE", "/api/versions/sec/v1/colors"),
        ("GET", "/api/versions/sec/v1/colors"),
        ("PUT", "/api/versions/sec/v1/frames/frame"),
        ("POST", "/api/diff/sec/v0/v1/frames/frame"),
        ("PATCH", "/"),
        ("POST", "/static/app.js"),
    ],
)
def test_other_methods_answer_405(world, method, path):
    assert client(world[0], writable=True).request(method, path).status_code == 405


# ---- requests out of range


@pytest.mark.parametrize(
    "query",
    [
        "limit=0",
        "limit=501",
        "limit=abc",
        "offset=-1",
        "offset=99999999999999999999",
        "where=" + "x" * 3000,
    ],
)
def test_out_of_range_query_parameters_answer_422(world, query):
    assert client(world[0]).get(f"/api/versions/sec/v1/frames?{query}").status_code == 422


@pytest.mark.parametrize("size", ["8", "5000", "-1", "big"])
def test_out_of_range_thumbnail_sizes_answer_422(world, size):
    r = client(world[0]).get(f"/api/versions/sec/v1/frames/frame/thumbnail?size={size}")
    assert r.status_code == 422


@pytest.mark.parametrize("where", ["label=a\x00b", "area>=", "((", "meta.=1", "count(x)>>2"])
def test_malformed_queries_answer_400(world, where):
    r = client(world[0]).get("/api/versions/sec/v1/frames", params={"where": where})
    assert r.status_code == 400
    assert r.json()["detail"]


def test_an_offset_past_the_end_is_an_empty_page(world):
    page = client(world[0]).get("/api/versions/sec/v1/frames?offset=1000").json()
    assert (page["total"], page["frames"]) == (3, [])


# ---- hosts and headers


@pytest.mark.parametrize("host", ["evil.example", "evil.example:8765", "192.168.1.5:8765"])
def test_a_foreign_host_header_answers_400(world, host):
    status, body = raw_request(create_app(world[0]), "GET", "/api/datasets", host=host)
    assert status == 400
    assert b"sec" not in body


@pytest.mark.parametrize("host", ["127.0.0.1:8765", "localhost:8765", "[::1]:8765", "localhost"])
def test_loopback_host_headers_are_served(world, host):
    assert raw_request(create_app(world[0]), "GET", "/api/datasets", host=host)[0] == 200


def test_allowed_hosts_opens_other_names_when_asked(world):
    app = create_app(world[0], allowed_hosts=["*"])
    assert raw_request(app, "GET", "/api/datasets", host="192.168.1.5:8765")[0] == 200


def test_responses_forbid_sniffing_and_framing(world):
    c = client(world[0])
    for path in ["/api/datasets", "/api/versions/sec/v1/frames/frame/sources/default/image", "/"]:
        r = c.get(path)
        assert r.headers["x-content-type-options"] == "nosniff"
        assert r.headers["x-frame-options"] == "DENY"
