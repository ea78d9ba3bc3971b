"""The store: importing a large COCO json, peak memory, query and diff latency, FiftyOne.

A synthetic COCO instances json (``_synthetic_coco``: N 640x480 images, 5N instances with
compressed RLE masks, 20 categories; no image files) is imported into an embedded store
(SQLite catalog, local blobs) by ``import_path`` in a fresh Python process that reports its
peak resident memory (VmHWM); a 10x smaller slice of the same json is imported the same way
to show whether the peak grows with the dataset. Then, on the big store: frames with a
"cat", frames with an annotation in an area range (through ``DataView`` when
``masklab.store.query`` is there, else plain SQL on the catalog tables), and ``diff`` of the
version against a child that changed a mask in 1% of its frames (frame-level and with
pixels). Last, FiftyOne (when it is installed in this interpreter, or in the one named by
``MASKLAB_BENCH_FIFTYONE_PYTHON``) imports a 1,000-image slice with its instance masks
beside masklab's import of the same slice; no ratio is printed without it.

Targets (the issue's): >= 5,000 frames/s on 2 cores; the peak of the big import within
1.25x of the small one's; each query and diff under a second. ``MASKLAB_BENCH_STORE_FRAMES``
shrinks N (default 100,000); ``MASKLAB_BENCH_STORE_PROFILE=1`` prints a cProfile of the big
import (top 15 by own time).
"""

from __future__ import annotations

import dataclasses
import importlib.util
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

import _synthetic_coco as syn  # type: ignore[import-not-found]
from _timing import agree, format_line, make_record  # type: ignore[import-not-found]
from masklab.core import rle
from masklab.store import Store, Version
from masklab.store.diff import diff

FRAMES = int(os.environ.get("MASKLAB_BENCH_STORE_FRAMES", "100000"))
TARGET_FPS = 5_000
PEAK_TARGET = 1.25  # big import's peak / small import's peak
LATENCY_S = 1.0
QUERY_RUNS = 5
CHANGED = 0.01  # share of frames the child version changes
HERE = Path(__file__).resolve().parent
LABEL = "cat"
AREA = (1_000, 5_000)
FO_FRAMES = 1_000
FO_RUNS = 2
ML_RUNS = 3

# VmHWM, not ru_maxrss: Linux carries ru_maxrss over exec (see bench_scale).
IMPORT_CHILD = """
import os, re, sys, time
from masklab.store import Store
from masklab.store.importer import import_path
home, path = sys.argv[1], sys.argv[2]
store = Store(home=home, catalog=f"sqlite:///{home}/catalog.db", blobs=f"{home}/blobs")
prof = None
if os.environ.get("MASKLAB_BENCH_STORE_PROFILE") == "1":
    import cProfile
    prof = cProfile.Profile()
    prof.enable()
t = time.perf_counter()
result = import_path(store, path, dataset="bench")
dt = time.perf_counter() - t
if prof is not None:
    import pstats
    prof.disable()
    pstats.Stats(prof, stream=sys.stderr).sort_stats("tottime").print_stats(15)
store.close()
hwm = re.search(r"VmHWM:\\s+(\\d+) kB", open("/proc/self/status").read()).group(1)
print(hwm, dt, result.frames, result.annotations, len(result.report.problems))
"""

# the COCO reader alone (parse + samples, no store): how much of the peak is the json's
READ_CHILD = """
import re, sys
from masklab.formats import open_reader
n = sum(1 for _ in open_reader(sys.argv[1], "coco"))
hwm = re.search(r"VmHWM:\\s+(\\d+) kB", open("/proc/self/status").read()).group(1)
print(hwm, n)
"""

# the store's own write path, frames streamed through add_frames (no json held): bounded?
STORE_CHILD = """
import re, sys
sys.path.insert(0, sys.argv[3])
import _synthetic_coco as syn
from masklab.store import Annotation, Frame, Store
home, n = sys.argv[1], int(sys.argv[2])
pool = syn.mask_pool()
store = Store(home=home, catalog=f"sqlite:///{home}/catalog.db", blobs=f"{home}/blobs")
v = store.create_dataset("mem").create_version("v1")
def frames():
    for i in range(n):
        anns = [Annotation((syn.CATEGORIES[(i + j) % 20],), 1 + (i + j) % 20,
                           rle=pool[(7 * i + j) % len(pool)], instance_id=j) for j in range(5)]
        yield Frame.single(f"{i:07d}", f"/img/{i:07d}.jpg", width=640, height=480,
                           annotations=anns)
v.add_frames(frames())
v.commit()
assert len(v) == n
store.close()
print(re.search(r"VmHWM:\\s+(\\d+) kB", open("/proc/self/status").read()).group(1))
"""

FO_CHILD = """
import sys, time
import fiftyone as fo
images, labels, runs = sys.argv[1], sys.argv[2], int(sys.argv[3])
fo.Dataset("warm-up").delete()  # starts the database outside the timing
best, samples, dets = float("inf"), 0, 0
for i in range(runs):
    t = time.perf_counter()
    ds = fo.Dataset.from_dir(
        dataset_type=fo.types.COCODetectionDataset,
        data_path=images,
        labels_path=labels,
        label_types="segmentations",
        name=f"bench-{i}",
    )
    best = min(best, time.perf_counter() - t)
    samples, dets = len(ds), ds.count("ground_truth.detections")
    ds.delete()
print("RESULT", best, samples, dets, fo.__version__)
"""


def _clean_env(**extra: str) -> dict[str, str]:
    """This environment without the store's overrides (so children use the temp store)."""
    env = {k: v for k, v in os.environ.items() if k not in ("MASKLAB_CATALOG", "MASKLAB_BLOBS")}
    env.update(extra)
    return env


def _mib(kib: str) -> float:
    return int(kib) / 1024


def _import_child(
    home: Path, json_path: Path, n: int, n_anns: int, *, profile: bool
) -> dict[str, Any]:
    env = _clean_env()
    if not profile:
        env.pop("MASKLAB_BENCH_STORE_PROFILE", None)
    out = subprocess.run(
        [sys.executable, "-c", IMPORT_CHILD, str(home), str(json_path)],
        capture_output=True,
        text=True,
        check=True,
        env=env,
    )
    kib, seconds, frames, anns, problems = out.stdout.split()
    agree(int(frames) == n, f"import: {frames} frames imported, {n} in the json")
    agree(int(anns) == n_anns, f"import: {anns} annotations imported, {n_anns} in the json")
    agree(int(problems) == 0, f"import: the reader reported {problems} problems")
    if out.stderr.strip():
        print("\n".join("    " + line for line in out.stderr.rstrip().splitlines()), flush=True)
    return {"peak_mib": _mib(kib), "seconds": float(seconds), "frames": n}


def _read_child(json_path: Path, n: int) -> float:
    out = subprocess.run(
        [sys.executable, "-c", READ_CHILD, str(json_path)],
        capture_output=True,
        text=True,
        check=True,
        env=_clean_env(),
    )
    kib, samples = out.stdout.split()
    agree(int(samples) == n, f"reader: {samples} samples, {n} images in the json")
    return _mib(kib)


def _median_s(fn: Callable[[], object], runs: int = QUERY_RUNS) -> float:
    """Median seconds of ``runs`` calls after one warm-up call."""
    fn()
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def _latency(name: str, seconds: float, runs: int = QUERY_RUNS) -> dict[str, Any]:
    rec = make_record(name, seconds, LATENCY_S, peer="1 s budget", target=1, op="<=")
    rec["stat"] = f"median of {runs} runs after a warm-up"
    print(format_line(rec), flush=True)
    return rec


def _k(n: int) -> str:
    """100000 -> '100k' (figure names stay short)."""
    return f"{n // 1000}k" if n >= 1000 and n % 1000 == 0 else f"{n:,}"


def _frame_id(image_id: int) -> str:
    return f"{image_id:012d}"  # the reader's sample id: file_name without its suffix


# --------------------------------------------------------------------------- import


def bench_import(tmp: Path, pool: list[rle.RLE]) -> tuple[list[dict[str, Any]], Path]:
    n_small = max(FRAMES // 10, 1)
    big_json, small_json = tmp / "instances_big.json", tmp / "instances_small.json"
    t = time.perf_counter()
    big = syn.write_coco(big_json, FRAMES, pool=pool)
    small = syn.write_coco(small_json, FRAMES, limit=n_small, pool=pool)
    print(
        f"  data: {big['images']:,} images 640x480, {big['annotations']:,} instances "
        f"(compressed RLE, {len(pool)} distinct masks), {len(syn.CATEGORIES)} categories, "
        f"json {big['bytes'] / 2**20:.0f} MiB, written in {time.perf_counter() - t:.1f} s; "
        f"no image files",
        flush=True,
    )
    runs = {}
    for label, path, info in (("small", small_json, small), ("big", big_json, big)):
        home = tmp / f"store-{label}"
        r = _import_child(home, path, info["images"], info["annotations"], profile=label == "big")
        r["reader_peak_mib"] = _read_child(path, info["images"])
        runs[label] = r
        print(
            f"  import {info['images']:>7,} frames: {r['seconds']:.1f} s, "
            f"{info['images'] / r['seconds']:,.0f} frames/s, peak {r['peak_mib']:.0f} MiB "
            f"(the COCO reader alone: {r['reader_peak_mib']:.0f} MiB)",
            flush=True,
        )
        if label == "small":
            shutil.rmtree(home)
    small_json.unlink()

    b, s = runs["big"], runs["small"]
    fps = FRAMES / b["seconds"]
    rec = make_record(
        f"import {_k(FRAMES)} frames ({_k(big['annotations'])} masks)",
        b["seconds"],
        FRAMES / TARGET_FPS,
        peer=f"{TARGET_FPS // 1000}k frames/s",
        target=1,
    )
    rec["frames_per_s"] = fps
    rec["annotations"] = big["annotations"]
    rec["peak_mib"] = b["peak_mib"]
    rec["stat"] = "one run in a fresh process"
    print(format_line(rec), flush=True)
    mem = make_record(
        f"peak memory {_k(FRAMES)} / {_k(n_small)} frames",
        b["peak_mib"] / 1e3,
        s["peak_mib"] / 1e3,
        peer=f"{_k(n_small)} frames",
        target=PEAK_TARGET,
        op="<=",
    )
    mem["peak_mib"] = {str(FRAMES): b["peak_mib"], str(n_small): s["peak_mib"]}
    mem["reader_peak_mib"] = {str(FRAMES): b["reader_peak_mib"], str(n_small): s["reader_peak_mib"]}
    mem["stat"] = "VmHWM of one fresh process each"
    print(format_line(mem).replace(" ms", " MiB"), flush=True)  # the *_ms fields hold MiB here
    peaks = {}
    for n in (n_small, FRAMES):
        out = subprocess.run(
            [sys.executable, "-c", STORE_CHILD, str(tmp / f"mem-{n}"), str(n), str(HERE)],
            capture_output=True,
            text=True,
            check=True,
            env=_clean_env(),
        )
        peaks[n] = _mib(out.stdout.split()[-1])
        shutil.rmtree(tmp / f"mem-{n}")
    store_mem = make_record(
        f"store write path peak {_k(FRAMES)} / {_k(n_small)}",
        peaks[FRAMES] / 1e3,
        peaks[n_small] / 1e3,
        peer=f"{_k(n_small)} frames",
        target=PEAK_TARGET,
        op="<=",
    )
    store_mem["peak_mib"] = {str(k): v for k, v in peaks.items()}
    store_mem["stat"] = "VmHWM of one fresh process each; frames streamed through add_frames"
    print(format_line(store_mem).replace(" ms", " MiB"), flush=True)
    return [rec, mem, store_mem], tmp / "store-big"


# --------------------------------------------------------------------------- queries


def _expected(n: int, pool: list[rle.RLE]) -> tuple[list[str], list[str]]:
    """Frame ids (version order) with a LABEL annotation, and with one whose area is in AREA."""
    d = syn.draws(n, len(pool))
    areas = np.array([rle.area(r) for r in pool])[d["masks"]]
    cat_id = syn.CATEGORIES.index(LABEL) + 1
    with_label = np.unique(d["image_ids"][d["category_ids"] == cat_id])
    in_range = np.unique(d["image_ids"][(areas >= AREA[0]) & (areas <= AREA[1])])
    return [_frame_id(i) for i in with_label.tolist()], [_frame_id(i) for i in in_range.tolist()]


def _queries(v: Version) -> tuple[str, Callable[[], list[str]], Callable[[], list[str]]]:
    """How to list the frames with LABEL and with an area in AREA: DataView, else SQL."""
    if importlib.util.find_spec("masklab.store.query") is not None:
        from masklab.store.query import DataView

        view = DataView(v)
        return (
            "DataView.where(...).frame_ids()",
            lambda: view.where(label=LABEL).frame_ids(),
            lambda: view.where(area=AREA).frame_ids(),
        )
    from sqlalchemy import select

    from masklab.store import catalog as cat

    m, fl, a = cat.members, cat.frame_labels, cat.rois

    def ids(inner: Any) -> list[str]:
        q = (
            select(m.c.frame_id)
            .where(m.c.version_id == v.id, m.c.frame_key.in_(inner))
            .order_by(m.c.seq)
        )
        with v.store.catalog.read() as conn:
            return list(conn.execute(q).scalars())

    return (
        "SQL on the catalog tables (no masklab.store.query)",
        lambda: ids(select(fl.c.frame_key).where(fl.c.label == LABEL)),
        lambda: ids(select(a.c.frame_key).where(a.c.area.between(*AREA))),
    )


def _child_version(v1: Version) -> tuple[Version, list[str], float]:
    """v2: a child of v1 in which every 100th frame has its first mask moved (or, having
    none, gains one)."""
    from masklab.store import Annotation

    square = np.zeros((syn.H, syn.W), np.uint8)
    square[10:30, 10:30] = 1
    extra = Annotation(
        labels=("dog",), class_id=syn.CATEGORIES.index("dog") + 1, rle=rle.encode(square)
    )
    t = time.perf_counter()
    edited = []
    for f in v1.frames_by_keys(v1.frame_keys()[:: round(1 / CHANGED)]):
        if f.annotations and f.annotations[0].rle is not None:
            first = f.annotations[0]
            moved = rle.translate(first.rle, 3, 2)  # the pool has no empty mask: it moves
            new = (dataclasses.replace(first, rle=moved), *f.annotations[1:])
        else:
            new = (extra, *f.annotations)
        edited.append(f.with_annotations(new))
    v2 = v1.dataset.create_version("v2", parent=v1)
    v2.update_frames(edited)
    v2.commit()
    agree(v2.frame_count == v1.frame_count, "the child version lost or gained frames")
    return v2, [f.id for f in edited], time.perf_counter() - t


def bench_queries(home: Path, pool: list[rle.RLE]) -> list[dict[str, Any]]:
    store = Store(home=home, catalog=f"sqlite:///{home}/catalog.db", blobs=f"{home}/blobs")
    try:
        v1 = store.version("bench:v1")
        agree(v1.frame_count == FRAMES, f"the store holds {v1.frame_count} frames, not {FRAMES}")
        how, by_label, by_area = _queries(v1)
        want_label, want_area = _expected(FRAMES, pool)
        got_label, got_area = by_label(), by_area()
        agree(
            got_label == want_label,
            f"label={LABEL!r}: {len(got_label)} frames, expected {len(want_label)}",
        )
        agree(
            got_area == want_area, f"area={AREA}: {len(got_area)} frames, expected {len(want_area)}"
        )
        print(
            f"  queries via {how}: label={LABEL!r} -> {len(got_label):,} frames, "
            f"area={AREA[0]}..{AREA[1]} px -> {len(got_area):,} frames",
            flush=True,
        )
        recs = [
            _latency(f"query label={LABEL!r} ({_k(FRAMES)})", _median_s(by_label)),
            _latency(f"query area={AREA[0]}..{AREA[1]} ({_k(FRAMES)})", _median_s(by_area)),
        ]

        v2, changed, setup_s = _child_version(v1)
        print(
            f"  v2: child of v1, {len(changed):,} frames ({CHANGED:.0%}) with a moved mask; "
            f"load + update_frames + commit {setup_s:.1f} s",
            flush=True,
        )
        frame_level = diff(v1, v2, pixels=False)
        agree(
            not frame_level.added and not frame_level.removed,
            f"diff: {len(frame_level.added)} added, {len(frame_level.removed)} removed; none were",
        )
        agree(
            sorted(f.frame_id for f in frame_level.changed) == sorted(changed),
            f"diff: {len(frame_level.changed)} changed frames, {len(changed)} were changed",
        )
        with_pixels = diff(v1, v2)
        agree(
            len(with_pixels.changed) == len(changed)
            and all(f.pixels > 0 for f in with_pixels.changed),
            "diff with pixels: a changed frame shows no changed pixel",
        )
        recs += [
            _latency(
                f"diff 2x{_k(FRAMES)}, 1% changed: frames",
                _median_s(lambda: diff(v1, v2, pixels=False)),
            ),
            _latency(f"diff 2x{_k(FRAMES)}, 1% changed: pixels", _median_s(lambda: diff(v1, v2))),
        ]
        return recs
    finally:
        store.close()


# --------------------------------------------------------------------------- FiftyOne


def _fiftyone_python() -> tuple[str | None, str]:
    """The interpreter that has fiftyone, or None and why there is none."""
    other = os.environ.get("MASKLAB_BENCH_FIFTYONE_PYTHON")
    if other:
        return other, f"fiftyone of {other}"
    if importlib.util.find_spec("fiftyone") is None:
        return None, (
            f"fiftyone is not installed in {sys.executable} (it is not in the bench extra; "
            "MASKLAB_BENCH_FIFTYONE_PYTHON may name an interpreter that has it)"
        )
    return sys.executable, "fiftyone"


_OPENED: list[str] = []  # image files opened while _WATCH names their folder
_WATCH: list[str] = []


def _audit(event: str, args: tuple[Any, ...]) -> None:
    if _WATCH and event == "open" and isinstance(args[0], (str, os.PathLike)):
        path = os.fspath(args[0])
        if isinstance(path, str) and path.startswith(_WATCH[0]):
            _OPENED.append(path)


def _masklab_slice(tmp: Path, json_path: Path, images: Path, n: int, n_anns: int) -> float:
    """Best of ML_RUNS imports of the slice into fresh stores, in this process. An audit
    hook watches ``open`` meanwhile: with width/height in the json and the images not
    ingested, the COCO reader and the importer must not open an image."""
    from masklab.store.importer import import_path

    if not _WATCH:
        sys.addaudithook(_audit)  # hooks cannot be removed; it idles once _WATCH is empty
    _WATCH[:] = [str(images)]
    _OPENED.clear()
    best = float("inf")
    try:
        for i in range(ML_RUNS):
            home = tmp / f"slice-store-{i}"
            with Store(
                home=home, catalog=f"sqlite:///{home}/catalog.db", blobs=f"{home}/blobs"
            ) as s:
                t = time.perf_counter()
                result = import_path(s, json_path, dataset="slice")
                best = min(best, time.perf_counter() - t)
            agree(result.frames == n and result.annotations == n_anns, "slice import counts")
            agree(not result.report.problems, f"slice import: {result.report.problems[:3]}")
            shutil.rmtree(home)
    finally:
        _WATCH.clear()
    agree(not _OPENED, f"the import opened {len(_OPENED)} image files, e.g. {_OPENED[:1]}")
    return best


def bench_fiftyone(tmp: Path, pool: list[rle.RLE]) -> list[dict[str, Any]]:
    root = tmp / "slice"
    root.mkdir()
    labels = root / "instances_slice.json"
    info = syn.write_coco(labels, FRAMES, limit=FO_FRAMES, pool=pool)
    n, n_anns = info["images"], info["annotations"]
    syn.write_images(root / "images", n)
    ours = _masklab_slice(tmp, labels, root / "images", n, n_anns)
    print(
        f"  slice: {n:,} images with their jpg files, {n_anns:,} instances; masklab "
        f"{ours:.2f} s ({n / ours:,.0f} frames/s)",
        flush=True,
    )
    python, peer = _fiftyone_python()
    if python is None:
        print(f"  FiftyOne: no figure: {peer}", flush=True)
        return []
    fo_home = tmp / "fiftyone"
    env = _clean_env(
        HOME=str(fo_home),  # its config and logs stay in the temp dir
        FIFTYONE_DATABASE_DIR=str(fo_home / "db"),
        FIFTYONE_DO_NOT_TRACK="true",
        FIFTYONE_SHOW_PROGRESS_BARS="false",
        FIFTYONE_DATABASE_VALIDATION="false",
    )
    try:
        out = subprocess.run(
            [python, "-c", FO_CHILD, str(root / "images"), str(labels), str(FO_RUNS)],
            capture_output=True,
            text=True,
            env=env,
            timeout=900,
        )
    except (OSError, subprocess.TimeoutExpired) as e:
        print(f"  FiftyOne: no figure: it could not run: {e}", flush=True)
        return []
    lines = [x for x in out.stdout.splitlines() if x.startswith("RESULT ")]
    if out.returncode != 0 or not lines:
        tail = (out.stderr.strip().splitlines() or ["(no error output)"])[-1]
        print(f"  FiftyOne: no figure: it failed (exit {out.returncode}): {tail}", flush=True)
        return []
    _, seconds, samples, dets, version = lines[-1].split()
    agree(int(samples) == n, f"FiftyOne imported {samples} samples, the slice has {n}")
    agree(int(dets) == n_anns, f"FiftyOne imported {dets} masks, the slice has {n_anns}")
    theirs = float(seconds)
    print(
        f"  FiftyOne {version} ({peer}): {theirs:.2f} s ({n / theirs:,.0f} frames/s), "
        f"best of {FO_RUNS}, MongoDB started beforehand",
        flush=True,
    )
    rec = make_record(f"import {_k(n)} frames vs FiftyOne", ours, theirs, peer="fiftyone")
    rec["stat"] = f"best of {ML_RUNS} (masklab) and {FO_RUNS} (FiftyOne) runs"
    rec["fiftyone"] = version
    print(format_line(rec), flush=True)
    return [rec]


def run() -> list[dict[str, Any]]:
    tmp = Path(tempfile.mkdtemp(prefix="masklab-store-"))
    try:
        pool = syn.mask_pool()
        recs, home = bench_import(tmp, pool)
        recs += bench_queries(home, pool)
        shutil.rmtree(home)
        recs += bench_fiftyone(tmp, pool)
        return recs
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
