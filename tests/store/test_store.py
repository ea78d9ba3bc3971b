"""The store's data model and versions, on SQLite and PostgreSQL, local folders and S3.

Expectations are written into the tests (hand-made frames, counted pixels); the catalog is
inspected with plain SQL where a claim is about storage (no frame rows copied, nothing staged).
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest
from sqlalchemy import create_engine, text

from masklab import BlobIntegrityError, NotFoundError, PublishedVersionError, StoreError
from masklab.core import rle
from masklab.store import Annotation, Frame, Mask, Source, Store


@pytest.fixture
def store(store_urls: tuple[str, str]) -> Iterator[Store]:
    catalog, blobs = store_urls
    s = Store(catalog=catalog, blobs=blobs)
    yield s
    s.close()


def square(h: int, w: int, y0: int, y1: int, x0: int, x1: int) -> np.ndarray:
    m = np.zeros((h, w), np.uint8)
    m[y0:y1, x0:x1] = 1
    return m


def frame(i: int, *, size: tuple[int, int] = (6, 8), extra: int = 0) -> Frame:
    h, w = size
    anns = [
        Annotation(("cat",), 1, rle=rle.encode(square(h, w, 1, 3, 1, 4 + extra)), instance_id=1),
        Annotation(("dog", "sitting"), 2, rle=rle.encode(square(h, w, 4, 6, 5, 8)), score=0.5),
    ]
    return Frame.single(
        f"f{i}", f"/data/img{i}.jpg", width=w, height=h, annotations=anns, meta={"i": i}
    )


def count(store: Store, sql: str) -> int:
    with store.catalog.read() as conn:
        return int(conn.execute(text(sql)).scalar_one())


def test_frames_round_trip_exactly(store):
    v = store.create_dataset("pets", description="d", tags=["a"]).create_version("v1")
    frames = [frame(i) for i in range(3)]
    v.add_frames(frames)
    v.commit()
    back = list(store.version("pets:v1").frames())
    assert back == frames
    assert [f.key for f in back] == [f.key for f in frames]
    assert v.frame_count == 3
    assert v.instance_count == 6
    assert store.dataset("pets").tags == ["a"]
    a = back[0].annotations[0]
    assert a.area == 6  # 2 rows x 3 columns, counted by hand
    assert a.labels == ("cat",)
    assert back[0].annotations[1].labels == ("dog", "sitting")


def test_staged_frames_are_invisible_until_commit(store):
    v = store.create_dataset("pets").create_version("v1")
    v.add_frames([frame(0), frame(1)])
    other = Store(catalog=store.catalog.url, blobs=store.blobs.url)
    try:
        assert len(other.version("pets:v1")) == 0
        assert list(other.version("pets:v1").frames()) == []
        assert v.pending() == 2
        v.commit()
        assert other.version("pets:v1").frame_ids() == ["f0", "f1"]
    finally:
        other.close()


def test_child_version_shares_frame_rows_and_edits_are_its_own(store):
    ds = store.create_dataset("pets")
    v1 = ds.create_version("v1")
    v1.add_frames([frame(i) for i in range(4)])
    v1.set_mask_labels({(0, 0, 0): ["background"], (1, 1, 1): ["cat"], (2, 2, 2): ["dog"]})
    v1.commit()
    rows_before = count(store, "SELECT count(*) FROM frames")
    v2 = ds.create_version("v2", parent="v1")
    assert count(store, "SELECT count(*) FROM frames") == rows_before  # nothing copied
    assert v2.frame_ids() == ["f0", "f1", "f2", "f3"]
    assert v2.get_mask_labels() == v1.get_mask_labels()
    v2.update_frames([frame(1, extra=2)])
    v2.remove_frames(["f3"])
    v2.add_frames([frame(9)])
    v2.commit()
    assert v2.frame_ids() == ["f0", "f1", "f2", "f9"]  # updated frame keeps its place
    assert v1.frame_ids() == ["f0", "f1", "f2", "f3"]
    assert v2.frame("f1").annotations[0].area == 10  # 2 x 5 after the edit
    assert v1.frame("f1").annotations[0].area == 6
    assert count(store, "SELECT count(*) FROM frames") == rows_before + 2
    assert v2.parent is not None
    assert v2.parent.name == "v1"


def test_mask_labels_follow_clearml(store):
    v = store.create_dataset("d").create_version("v1")
    spec = {(0, 0, 0): ["background"], (1, 1, 1): ["person", "sitting"], (2, 2, 2): ["cat"]}
    v.set_mask_labels(spec)
    assert v.get_mask_labels() == {k: list(n) for k, n in spec.items()}
    lm = v.label_map
    assert lm.by_name("sitting").id == 1
    assert lm.background_id == 0


def test_published_version_refuses_every_write_and_changes_nothing(store):
    v = store.create_dataset("d").create_version("v1")
    v.add_frames([frame(0)])
    v.publish()
    assert v.status == "published"
    key = v.frame("f0").key
    with pytest.raises(PublishedVersionError, match="published"):
        v.add_frames([frame(1)])
    with pytest.raises(PublishedVersionError):
        v.update_frames([frame(0, extra=1)])
    with pytest.raises(PublishedVersionError):
        v.remove_frames(["f0"])
    with pytest.raises(PublishedVersionError):
        v.set_mask_labels({0: ["background"]})
    with pytest.raises(PublishedVersionError):
        v.commit()
    assert v.frame_ids() == ["f0"]
    assert v.frame("f0").key == key
    assert v.pending() == 0


def test_bad_input_raises_store_error_and_changes_nothing(store):
    with pytest.raises(NotFoundError, match="no dataset named 'nope'"):
        store.dataset("nope")
    ds = store.create_dataset("d")
    with pytest.raises(StoreError, match="already exists"):
        store.create_dataset("d")
    v = ds.create_version("v1")
    with pytest.raises(NotFoundError, match="no version 'v9'"):
        ds.version("v9")
    wrong = Frame.single(
        "f", "x.jpg", width=8, height=6, annotations=[Annotation(("cat",), rle=rle.empty((5, 8)))]
    )
    with pytest.raises(StoreError, match=r"\[5, 8\].*\[6, 8\]"):
        v.add_frames([frame(0), wrong])
    mask = Mask("m.png", size=(4, 4))
    with pytest.raises(StoreError, match="mask '00'"):
        v.add_frames([Frame.single("g", "g.jpg", width=8, height=6, masks=mask)])
    assert v.pending() == 0  # frame(0) of the failed call is not left staged
    v.commit()
    assert len(v) == 0
    v.add_frames([frame(0)])
    with pytest.raises(StoreError, match="already has frame 'f0'"):
        v.add_frames([frame(0)])
    with pytest.raises(NotFoundError, match="no frame 'zz'"):
        v.remove_frames(["zz"])
    with pytest.raises(StoreError, match="appears twice"):
        v.add_frames([frame(5), frame(5)])


def test_frame_groups_and_mask_ids(store):
    left = Source("/l.png", id="left", width=4, height=2, masks=["a.png", "b.png"])
    right = Source("/r.png", id="right", width=4, height=2, masks={"depth": Mask("d.png", "alpha")})
    f = Frame("g1", (left, right), (Annotation(("car",), source="right", box=(0, 0, 2, 1)),))
    assert sorted(left.masks) == ["00", "01"]
    v = store.create_dataset("d").create_version("v1")
    v.add_frames([f])
    v.commit()
    back = v.frame("g1")
    assert back == f
    assert back.source("right").masks["depth"].mode == "alpha"
    with pytest.raises(StoreError, match="names source 'top'"):
        Frame("x", (left,), (Annotation(source="top"),))


def test_pixel_masks_are_blobs_read_back_exactly(store):
    sem = np.array([[0, 1, 1, 2], [0, 0, 2, 2]], np.uint8)
    m = store.put_mask(sem)
    assert m.values == (0, 1, 2)
    assert m.size == (2, 4)
    assert m.uri.startswith("blob:sha256:")
    np.testing.assert_array_equal(store.read_mask(m), sem)
    alpha = np.array([[0, 128, 255]], np.uint8)
    np.testing.assert_array_equal(store.read_mask(store.put_mask(alpha, mode="alpha")), alpha)
    wide = np.array([[0, 300]], np.int32)
    np.testing.assert_array_equal(store.read_mask(store.put_mask(wide)), wide)


def test_corrupt_blob_is_reported_never_served(store):
    m = store.put_mask(np.eye(3, dtype=np.uint8))
    digest = m.uri.split(":")[-1]
    path = store.blobs.path(digest)
    store.blobs.fs.pipe_file(path, b"not the png it was")
    with pytest.raises(BlobIntegrityError, match="corrupt"):
        store.read_mask(m)


def test_external_uris_are_referenced_and_ingest_copies(store, tmp_path):
    img = tmp_path / "img.bin"
    img.write_bytes(b"\x89PNG fake bytes")
    assert store.read_bytes(str(img)) == b"\x89PNG fake bytes"
    digest = store.blobs.ingest(str(img))
    img.unlink()
    assert store.blobs.get(digest) == b"\x89PNG fake bytes"
    with pytest.raises(NotFoundError):
        store.read_bytes(str(img))


def test_schema_is_versioned(store):
    assert count(store, "SELECT max(version) FROM schema_migrations") == 1
    Store(catalog=store.catalog.url, blobs=store.blobs.url).close()  # reopening migrates nothing
    assert count(store, "SELECT count(*) FROM schema_migrations") == 1


def test_newer_schema_is_refused(tmp_path):
    url = f"sqlite:///{tmp_path}/c.db"
    Store(catalog=url, blobs=str(tmp_path / "b")).close()
    engine = create_engine(url)
    with engine.begin() as conn:
        conn.execute(text("INSERT INTO schema_migrations VALUES (99, 'later')"))
    engine.dispose()
    with pytest.raises(StoreError, match="schema version 99"):
        Store(catalog=url, blobs=str(tmp_path / "b"))


def test_default_home_holds_catalog_and_blobs(tmp_path, monkeypatch):
    monkeypatch.setenv("MASKLAB_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("MASKLAB_CATALOG", raising=False)
    monkeypatch.delenv("MASKLAB_BLOBS", raising=False)
    with Store() as s:
        s.create_dataset("x")
        s.put_mask(np.zeros((2, 2), np.uint8))
    assert (tmp_path / "home" / "catalog.db").is_file()
    assert any((tmp_path / "home" / "blobs" / "sha256").rglob("*"))
