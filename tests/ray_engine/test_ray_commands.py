"""``--engine ray`` on import, export, eval and iis evaluate: what the local engine gives.

Each test runs the command twice on data made here, with ``--workers 1`` (the oracle: one
process, no Ray) and with ``--engine ray`` on the package's 2-CPU local cluster, and
compares what they leave: the store's frame keys and label map, exported files byte for
byte with the report, eval's json to the last bit with its problems, iis records but
their timings. ``masklab.ray.pool.ordered_map`` itself is checked against the contract of
``masklab._workers.ordered_map``: order, an error at its place, chunks.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from tests.files import tree
from tests.iis.test_parallel_iis import TIMING, _grabcut
from tests.store.test_parallel_import import BAD_MASK, BAD_RECORD, _Made, _png_masks
from tests.test_parallel_eval import EXTRA, MISSING, WRONG_SIZE, _panoptic, _semantic
from typer.testing import CliRunner

from masklab import _workers
from masklab.cli import app
from masklab.errors import FormatError
from masklab.store import Store
from masklab.store.importer import import_path

pytest.importorskip("ray.data")
from masklab.ray import pool

runner = CliRunner()


@pytest.fixture(autouse=True)
def ray_maps(ray_cluster, monkeypatch) -> list[int]:
    """Every test here runs on the package's local Ray cluster (conftest); the list counts
    the items each map sent to Ray, so a test can tell the work really went there."""
    sent: list[int] = []
    real = pool.ordered_map

    def counted(fn, items, **kwargs):
        def counting():
            n = 0
            for item in items:
                n += 1
                yield item
            sent.append(n)

        return real(fn, counting(), **kwargs)

    monkeypatch.setattr(pool, "ordered_map", counted)
    return sent


def _ok(*args: str) -> str:
    result = runner.invoke(app, list(args))
    assert result.exit_code == 0, result.output
    return result.stdout


# --------------------------------------------------------------------------- the map itself


def test_ordered_map_yields_in_input_order_across_chunks(monkeypatch):
    monkeypatch.setattr(pool, "CHUNK", 7)  # 3 Ray Data executions for 20 items
    with _workers.engine(pool.ordered_map):
        got = list(_workers.ordered_map(math.isqrt, [k * k for k in range(20)], workers=2))
    assert got == list(range(20))


def _drain(results, into: list) -> None:
    for value in results:
        into.append(value)


def test_an_error_comes_back_at_its_place_after_the_results_before_it():
    got: list[float] = []
    with _workers.engine(pool.ordered_map):
        results = _workers.ordered_map(math.sqrt, [4, 9, -1, 16], workers=2)
        with pytest.raises(ValueError, match="math domain error"):
            _drain(results, got)
    assert got == [2.0, 3.0]


def test_an_error_of_the_items_comes_after_the_results_before_it():
    def items():
        yield from (1, 4)
        raise FormatError("the reader broke here")

    got: list[float] = []
    with _workers.engine(pool.ordered_map):
        results = _workers.ordered_map(math.sqrt, items(), workers=2)
        with pytest.raises(FormatError, match="broke here"):
            _drain(results, got)
    assert got == [1.0, 2.0]


# --------------------------------------------------------------------------- import


def test_cli_import_on_ray_makes_the_frames_of_one_process(tmp_path: Path, ray_maps):
    data = _png_masks(tmp_path / "data")
    home = tmp_path / "home"
    base = ["import", str(data), "--home", str(home), "--json"]
    one = json.loads(_ok(*base, "--dataset", "one", "--workers", "1"))
    assert ray_maps == []
    on_ray = json.loads(_ok(*base, "--dataset", "ray", "--engine", "ray"))
    assert ray_maps == [6]  # every sample's frame was built on Ray
    assert one["frames"] == on_ray["frames"] == 6
    assert on_ray["report"] == one["report"]
    with Store(home=home) as store:
        a, b = store.version("one"), store.version("ray")
        assert b.frame_keys() == a.frame_keys()
        assert b.label_map.to_dict() == a.label_map.to_dict()


def test_import_on_ray_reports_a_bad_frame_in_order_and_keeps_the_rest(tmp_path: Path):
    with Store(home=tmp_path / "home") as store:
        one = import_path(store, _Made(), dataset="one", workers=1)
        with pool.engine():
            on_ray = import_path(store, _Made(), dataset="ray", workers=2)
        a, b = store.version(one.version), store.version(on_ray.version)
        assert b.frame_keys() == a.frame_keys()
        assert len(b.frame_ids()) == 6  # 8 samples, a bad mask and a bad record left out
    problems = [p.to_dict() for p in on_ray.report.problems]
    assert problems == [p.to_dict() for p in one.report.problems]
    assert [p["record"] for p in problems] == [f"s{BAD_MASK}", f"record {BAD_RECORD}"]


def test_strict_import_on_ray_stops_at_the_first_problem_and_keeps_nothing(tmp_path: Path):
    with Store(home=tmp_path / "home") as store:
        with pool.engine(), pytest.raises(FormatError, match=r"record s2: .*0\.\.65535"):
            import_path(store, _Made(strict=True), dataset="strict", workers=2)
        assert [v.name for v in store.dataset("strict").versions()] == []


# --------------------------------------------------------------------------- export


def test_cli_export_on_ray_writes_the_files_and_report_of_one_process(tmp_path: Path, ray_maps):
    data = _png_masks(tmp_path / "data")
    home = tmp_path / "home"
    _ok("import", str(data), "--dataset", "d", "--home", str(home))
    reports = {}
    for name, extra in (("one", ["--workers", "1"]), ("ray", ["--engine", "ray"])):
        report = tmp_path / f"{name}.json"
        args = ["export", "d", str(tmp_path / name), "--to", "voc", "--home", str(home)]
        _ok(*args, "--report", str(report), *extra)
        reports[name] = json.loads(report.read_text())
    assert ray_maps == [1]  # one batch of 6 frames encoded on Ray
    assert tree(tmp_path / "ray") == tree(tmp_path / "one")
    assert reports["ray"] == reports["one"]
    assert reports["one"]["samples"] == 6
    assert any(p.endswith(".png") for p in tree(tmp_path / "one"))


# --------------------------------------------------------------------------- eval


def _eval(gt: Path, pred: Path, out: Path, *args: str) -> dict:
    _ok("eval", str(gt), str(pred), "--out", str(out), *args)
    doc: dict = json.loads(out.read_text())
    return doc


def test_cli_eval_semantic_on_ray_gives_the_json_of_one_process(tmp_path: Path, ray_maps):
    gt, pred = _semantic(tmp_path, "gt"), _semantic(tmp_path, "pred")
    one = _eval(gt, pred, tmp_path / "1.json", "--workers", "1")
    on_ray = _eval(gt, pred, tmp_path / "r.json", "--engine", "ray")
    assert ray_maps == [11]  # the 11 pairs with both sides, scored (or refused) on Ray
    assert on_ray == one  # floats compared exactly
    assert [p["sample"] for p in on_ray["problems"]] == [MISSING, WRONG_SIZE, EXTRA]
    assert 0.0 < one["miou"] < 1.0


def test_cli_eval_panoptic_on_ray_gives_the_json_of_one_process(tmp_path: Path):
    gt, pred = _panoptic(tmp_path, "gt"), _panoptic(tmp_path, "pred")
    one = _eval(gt, pred, tmp_path / "1.json", "--task", "panoptic", "--workers", "1")
    on_ray = _eval(gt, pred, tmp_path / "r.json", "--task", "panoptic", "--engine", "ray")
    assert on_ray == one
    assert 0.0 < one["all"]["pq"] < 1.0


def test_cli_eval_strict_on_ray_stops_at_the_first_problem_in_gt_order(tmp_path: Path):
    gt, pred = _semantic(tmp_path, "gt"), _semantic(tmp_path, "pred")
    args = ["eval", str(gt), str(pred), "--out", str(tmp_path / "s.json"), "--strict"]
    result = runner.invoke(app, [*args, "--engine", "ray"])
    assert result.exit_code == 1
    assert f"sample '{MISSING}': no prediction" in result.output


# --------------------------------------------------------------------------- iis evaluate


def test_cli_iis_evaluate_on_ray_clicks_what_one_process_clicks(tmp_path: Path, ray_maps):
    data = _grabcut(tmp_path / "GrabCut", 6)
    base = ["iis", "evaluate", "--dataset", f"grabcut:{data}", "--model", "graphcut"]
    base += ["--robot", "random", "--max-clicks", "4", "--iou", "0.95"]
    records, summaries = [], []
    for name, extra in (("one", ["--workers", "1"]), ("ray", ["--engine", "ray"])):
        _ok(*base, "--out", str(tmp_path / name), *extra)
        lines = (tmp_path / name / "samples.jsonl").read_text().splitlines()
        records.append([{k: v for k, v in json.loads(x).items() if k not in TIMING} for x in lines])
        summaries.append(json.loads((tmp_path / name / "summary.json").read_text()))
    assert ray_maps == [6]
    assert records[1] == records[0]
    assert [r["id"] for r in records[1]] == [f"im{i}" for i in range(6)]
    assert len({len(r["clicks"]) for r in records[0]}) > 1  # the random robot made runs differ
    assert (summaries[0]["engine"], summaries[1]["engine"]) == ("local", "ray")
    for key in ("noc", "nof"):
        assert summaries[1]["summary"][key] == summaries[0]["summary"][key]


def test_engine_ray_without_the_extra_is_an_error_line(tmp_path: Path, monkeypatch):
    import builtins

    real_import = builtins.__import__

    def no_ray(name, *args, **kwargs):
        if name == "ray" or name.startswith("ray."):
            raise ImportError(f"No module named {name!r}")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_ray)
    gt = _semantic(tmp_path, "gt")
    result = runner.invoke(app, ["eval", str(gt), str(gt), "--engine", "ray"])
    assert result.exit_code == 1
    assert 'pip install "masklab[ray]"' in result.output
