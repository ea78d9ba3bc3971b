"""``convert(..., workers=N)`` and ``--workers N``: every output byte and the whole report
equal one process's, whatever N; bad records are reported in order; strict mode leaves
nothing behind."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import pytest
from tests.files import tree
from tests.formats import synthetic
from typer.testing import CliRunner

from masklab import formats
from masklab.cli import app
from masklab.errors import FormatError
from masklab.formats import _parallel
from masklab.formats.report import ConversionReport

runner = CliRunner()
N = 40  # samples: with 16 a batch, three batches, so each of up to 3 workers gets some
BAD_IMAGE = 17  # its 2-point polygon is reported; the image is still written
AIRO = ("airo-mono-coco-val2017-small", "airo-dataset-tools", "test", "test_data")


@pytest.fixture(scope="module")
def coco_src(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A COCO dataset of N images (holes, parts, overlaps, crowd regions) with bad records:
    a 2-point polygon on image BAD_IMAGE and an annotation of an image that is not there."""
    root = tmp_path_factory.mktemp("parallel")
    data = synthetic.samples(root / "images", N)
    with formats.get("coco").Writer(root / "coco", labels=synthetic.LABELS) as w:
        for s in data:
            w.write(s)
    ann_file = next((root / "coco").glob("annotations/*.json"))
    doc = json.loads(ann_file.read_text())
    bad = next(a for a in doc["annotations"] if a["image_id"] == BAD_IMAGE + 1)
    bad["segmentation"] = [[0, 0, 1, 1]]
    doc["annotations"].append({**bad, "id": 10_000, "image_id": 999})
    ann_file.write_text(json.dumps(doc))
    return root / "coco"


def _converted(src: Path, dst: Path, to: str, workers: int, **options: object) -> tuple:
    report = formats.convert(src, dst, to=to, workers=workers, **options)
    return tree(dst), report.to_dict()


@pytest.mark.parametrize(
    ("to", "counts"),
    [("voc", (1, 2, 3)), ("coco", (1, 3)), ("yolo-seg", (1, 2)), ("png-masks", (1, 2))],
)
def test_workers_write_the_bytes_and_report_of_one_process(coco_src, tmp_path, to, counts):
    results = {n: _converted(coco_src, tmp_path / f"out{n}", to, n) for n in counts}
    files, report = results[1]
    assert len(files) >= N  # at least a file per image
    assert report["samples"] == N  # the shard with the bad record finished, and the others
    for n in counts[1:]:
        assert results[n][0] == files, f"{to}: files differ with {n} workers"
        assert results[n][1] == report, f"{to}: report differs with {n} workers"


def test_bad_records_are_reported_in_order_whatever_the_workers(coco_src, tmp_path):
    report = formats.convert(coco_src, tmp_path / "voc", to="voc", workers=2)
    records = [p.record for p in report.problems]
    # planned in the parent (the orphan annotation), then decoded in a worker (the polygon)
    assert records[0] == "annotation 10000"
    assert [r for r in records[1:] if str(r).startswith("annotation")] == [records[1]]
    assert "3 points" in report.problems[1].message or "coordinates" in report.problems[1].message
    assert report.samples == N


def test_real_coco_converts_the_same_with_two_workers(shared_data, tmp_path):
    src = shared_data(*AIRO, "instances_val2017_small.json")
    for to in ("voc", "coco"):
        one = _converted(src, tmp_path / f"{to}1", to, 1, images="none")
        two = _converted(src, tmp_path / f"{to}2", to, 2, images="none")
        assert two == one
        assert one[1]["samples"] > 0


def test_strict_stops_at_the_bad_record_and_leaves_nothing(coco_src, tmp_path):
    with pytest.raises(FormatError, match="annotation 10000"):
        formats.convert(coco_src, tmp_path / "out", to="voc", strict=True, workers=3)
    assert list(tmp_path.iterdir()) == []


def test_strict_error_inside_a_shard_leaves_nothing(coco_src, tmp_path):
    """The orphan annotation removed: the first problem is the polygon, decoded in a worker."""
    src = tmp_path / "src"
    (src / "annotations").mkdir(parents=True)
    doc = json.loads(next(coco_src.glob("annotations/*.json")).read_text())
    doc["annotations"] = [a for a in doc["annotations"] if a["image_id"] != 999]
    (src / "annotations" / "instances_default.json").write_text(json.dumps(doc))
    with pytest.raises(FormatError, match=r"3 points|coordinates"):
        formats.convert(src, tmp_path / "out", to="coco", strict=True, workers=2)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["src"]


def test_a_writer_without_encode_writes_in_the_parent(coco_src, tmp_path, monkeypatch):
    """A writer without parallel encode (a VOC writer that only implements ``write``,
    registered as "serial-voc"): the workers decode, the parent writes, and the output is
    the split VOC writer's."""
    voc_writer = formats.get("voc").Writer

    class Serial(voc_writer):
        parallel = False
        written_here = 0

        def write(self, sample):
            Serial.written_here += 1
            self.commit(*self.encode_reported(sample))

    real_get = formats.get
    fake = SimpleNamespace(Writer=Serial)
    monkeypatch.setattr(
        formats, "get", lambda name: fake if name == "serial-voc" else real_get(name)
    )
    assert _parallel.uses_workers(formats.open_reader(coco_src), Serial)  # COCO decodes apart
    one = _converted(coco_src, tmp_path / "one", "serial-voc", 1)
    two = _converted(coco_src, tmp_path / "two", "serial-voc", 2)
    assert Serial.written_here == 2 * N  # every sample written in this process
    assert two == one
    split = _converted(coco_src, tmp_path / "voc", "voc", 2)
    assert two[0] == split[0]


def test_cli_export_with_workers_equals_one_worker(coco_src, tmp_path):
    home = ["--home", str(tmp_path / "home")]
    done = runner.invoke(app, ["import", str(coco_src), "--dataset", "d", "--workers", "1", *home])
    assert done.exit_code == 0, done.output
    trees, reports = [], []
    for n in (1, 2):
        out = tmp_path / f"out{n}"
        args = ["export", "d", str(out), "--to", "voc", "--workers", str(n), "--json", *home]
        done = runner.invoke(app, args)
        assert done.exit_code == 0, done.output
        trees.append(tree(out))
        reports.append(json.loads(done.stdout))
    assert trees[1] == trees[0]
    assert reports[1] == reports[0]
    assert reports[0]["samples"] == N


def test_cli_convert_takes_workers(coco_src, tmp_path):
    args = ["convert", str(coco_src), str(tmp_path / "out"), "--to", "voc", "--json"]
    done = runner.invoke(app, [*args, "--workers", "2"])
    assert done.exit_code == 0, done.output
    assert json.loads(done.stdout)["samples"] == N


def test_report_delta_holds_what_was_added_since_the_mark():
    report = ConversionReport()
    report.problem("a", 1, "first")
    start = _parallel.mark(report)
    assert _parallel.since(report, start) is None
    report.problem("a", 2, "second")
    report.unknown_colors[(1, 2, 3)] += 5
    report.clipped += 1
    delta = _parallel.since(report, start)
    assert delta is not None
    assert [p.record for p in delta.problems] == [2]
    assert (delta.clipped, dict(delta.unknown_colors)) == (1, {(1, 2, 3): 5})
