"""``import_path(..., workers=N)`` and ``masklab import --workers N``: the frames (keys, ids,
order), label map and report of a one-process import, whatever the number of workers."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from masklab.cli import app
from masklab.core import rle
from masklab.core.instances import Instance
from masklab.core.labels import LabelMap
from masklab.errors import FormatError
from masklab.formats import Reader, Sample, get
from masklab.store import Store
from masklab.store.importer import import_path

runner = CliRunner()
N = 8
BAD_MASK = 2  # its class map holds 70000: no mask PNG can hold it, the frame fails
BAD_RECORD = 5  # the reader reports it and yields nothing for it


class _Made(Reader):
    """Samples drawn here: a class map and an instance each, with two kinds of failure."""

    spec = get("npz").SPEC

    def __init__(self, *, strict: bool = False) -> None:
        super().__init__("made-here", strict=strict)
        self._labels = LabelMap.from_names(["background", "cat", "dog"], background=0)

    def __iter__(self) -> Iterator[Sample]:
        for i in range(N):
            if i == BAD_RECORD:
                self.problem("made-here", f"record {i}", "a record the reader cannot read")
                continue
            semantic = np.zeros((6, 7), np.int32)
            semantic[1 : 2 + i % 4, 2:5] = 1 + i % 2
            if i == BAD_MASK:
                semantic[0, 0] = 70000
            obj = rle.encode((semantic == 1 + i % 2).astype(np.uint8))
            yield Sample(f"s{i}", (6, 7), semantic=semantic, instances=(Instance(obj, 1 + i % 2),))


def _imported(store: Store, name: str, workers: int, strict: bool = False) -> dict:
    result = import_path(store, _Made(strict=strict), dataset=name, workers=workers)
    v = store.version(result.version)
    return {
        "keys": v.frame_keys(),
        "ids": v.frame_ids(),
        "labels": v.label_map.to_dict(),
        "counts": (result.frames, result.annotations),
        "problems": [p.to_dict() for p in result.report.problems],
    }


def test_two_workers_import_the_frames_and_report_of_one(tmp_path: Path):
    with Store(home=tmp_path / "home") as store:
        one = _imported(store, "one", 1)
        two = _imported(store, "two", 2)
    assert two == one
    kept = [f"s{i}" for i in range(N) if i not in (BAD_MASK, BAD_RECORD)]
    assert sorted(one["ids"]) == sorted(kept)
    assert one["counts"] == (len(kept), len(kept))
    # the failed frame is reported where a one-process import reports it: before the
    # reader's problem with the later record, though the reader got there first
    assert [p["record"] for p in two["problems"]] == [f"s{BAD_MASK}", f"record {BAD_RECORD}"]
    assert "0..65535" in two["problems"][0]["message"]


def test_strict_stops_at_the_same_first_problem(tmp_path: Path):
    with Store(home=tmp_path / "home") as store:
        with pytest.raises(FormatError, match=r"record s2: .*0\.\.65535"):
            import_path(store, _Made(strict=True), dataset="strict", workers=2)
        assert [v.name for v in store.dataset("strict").versions()] == []  # nothing left


def _png_masks(root: Path) -> Path:
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    for i in range(6):
        Image.fromarray(np.full((5, 6, 3), 20 * i, np.uint8)).save(root / "images" / f"{i}.png")
        mask = np.zeros((5, 6), np.uint8)
        mask[: 1 + i % 4, 1:4] = 1 + i % 2
        Image.fromarray(mask, mode="L").save(root / "masks" / f"{i}.png")
    labels = LabelMap.from_names(["background", "cat", "dog"], background=0)
    (root / "labels.json").write_text(json.dumps({"layout": "index", **labels.to_dict()}))
    return root


def test_cli_import_with_workers_makes_the_frames_of_one(tmp_path: Path):
    data = _png_masks(tmp_path / "data")
    home = tmp_path / "home"
    for name, workers in (("one", "1"), ("two", "2")):
        args = ["import", str(data), "--dataset", name, "--home", str(home), "--json"]
        result = runner.invoke(app, [*args, "--workers", workers])
        assert result.exit_code == 0, result.output
        assert json.loads(result.stdout)["frames"] == 6
    with Store(home=home) as store:
        one, two = store.version("one"), store.version("two")
        assert two.frame_keys() == one.frame_keys()
        assert two.label_map.to_dict() == one.label_map.to_dict()
        frame = next(f for f in two.frames() if f.id == "3")
        mask = store.read_mask(frame.sources[0].masks["semantic"])
    expected = np.zeros((5, 6), np.uint8)
    expected[:4, 1:4] = 2  # drawn above for i = 3
    np.testing.assert_array_equal(mask, expected)
