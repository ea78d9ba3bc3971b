"""The contract every format module keeps, checked over the whole registry."""

from __future__ import annotations

import numpy as np
import pytest
from tests.formats import synthetic

from masklab import formats
from masklab.errors import FormatError, UnknownFormatError

READABLE = formats.available()
WRITABLE = [n for n in READABLE if formats.get(n).SPEC.can_write]


@pytest.mark.parametrize("name", READABLE)
def test_module_has_the_contract(name):
    mod = formats.get(name)
    assert mod.SPEC.name == name
    assert callable(mod.detect)
    assert mod.Reader.spec is mod.SPEC
    if mod.SPEC.can_write:
        assert mod.Writer.spec is mod.SPEC
    assert mod.__doc__


@pytest.mark.parametrize("name", WRITABLE)
def test_written_output_is_detected_as_its_format(name, tmp_path):
    data = synthetic.samples(tmp_path / "images", 2)
    out = tmp_path / "out"
    with formats.get(name).Writer(out, labels=synthetic.LABELS) as writer:
        for s in data:
            writer.write(s)
    assert formats.detect(out) == name


@pytest.mark.parametrize("name", WRITABLE)
def test_every_pixel_keeps_its_class_unless_a_loss_is_reported(name, tmp_path):
    data = synthetic.samples(tmp_path / "images", 3)
    out = tmp_path / "out"
    mod = formats.get(name)
    with mod.Writer(out, labels=synthetic.LABELS) as writer:
        for s in data:
            writer.write(s)
    lossy = {loss.sample for loss in writer.report.losses}
    assert not writer.report.problems
    reader = mod.Reader(out)
    back = {s.id: s for s in reader}
    assert not reader.report.problems
    assert len(back) == len(data)
    for orig in data:
        got = back.get(orig.id) or next(s for s in back.values() if s.id.endswith(orig.id))
        assert got.size == orig.size
        want = synthetic.painted_names(orig, synthetic.LABELS)
        have = synthetic.painted_names(got, reader.labels)
        if orig.id in lossy:
            continue
        np.testing.assert_array_equal(have, want, err_msg=f"{name}: {orig.id}")


@pytest.mark.parametrize("name", WRITABLE)
def test_writer_refuses_to_clobber_and_leaves_nothing_on_failure(name, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    with pytest.raises(FormatError, match="already exists"):
        formats.get(name).Writer(out, labels=synthetic.LABELS)
    fresh = tmp_path / "fresh"
    with pytest.raises(RuntimeError), formats.get(name).Writer(fresh, labels=synthetic.LABELS):
        raise RuntimeError("boom")
    assert not fresh.exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_unknown_format_lists_what_was_looked_for(tmp_path):
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(UnknownFormatError, match="cannot tell the format") as err:
        formats.detect(tmp_path)
    for name in READABLE:
        assert f"{name}:" in str(err.value)


def test_unknown_format_name_lists_the_known_ones():
    with pytest.raises(UnknownFormatError, match="unknown format 'shapefile'; known formats"):
        formats.get("shapefile")


@pytest.mark.parametrize("name", WRITABLE)
def test_images_none_writes_annotations_only(name, tmp_path):
    """Option images='none' (Datumaro's save_media=False): no image file is written, and
    every writer accepts the option."""
    data = synthetic.samples(tmp_path / "images", 2)
    out = tmp_path / "out"
    with formats.get(name).Writer(out, labels=synthetic.LABELS, images="none") as writer:
        for s in data:
            writer.write(s)
    images = {s.image.read_bytes() for s in data}
    assert not [p for p in out.rglob("*") if p.is_file() and p.read_bytes() in images]


def test_images_option_is_checked(tmp_path):
    with pytest.raises(ValueError, match="images must be 'link', 'copy' or 'none'"):
        formats.get("voc").Writer(tmp_path / "o", labels=synthetic.LABELS, images="symlink")
