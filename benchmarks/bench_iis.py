"""The IIS harness's own cost per click (robot + IoU + click encoding) against RITM's clicker.

Data: 480x640 synthetic objects (ellipses and star blobs, an ignore band on part of the
boundary as GrabCut has) and, per click, a "model" prediction whose errors shrink as clicks
are added (boundary shifts, missed chunks, false blobs), the clicks being the robot's own.

Peer ("ritm-ref"): RITM's ``Clicker._get_next_click`` as reference/iis.md §1.2 describes it,
written here: FN / FP maps, ``np.pad`` by one pixel, ``cv2.distanceTransform(DIST_L2, 0)`` of
both full padded maps on every click, multiplied by the not-clicked map, ``np.where`` for the
first maximum; RITM's ``get_iou``; RITM's ``DistMaps`` disks (``dist^2 <= r^2`` over the
whole image per click).

Agreement first: every state's click, IoU and disk maps must match. The one allowed click
difference is documented in :mod:`masklab.iis.robots`: OpenCV's float32 distances carry a
1-ulp rounding, so on an *exact* tie of the true distance the reference's ``np.where`` may
pick a later pixel than the first in row-major order; such a state must be an exact tie
(SciPy's EDT squared), same sign, masklab's pixel first. Those are counted and printed.

Figures: the robot alone (masklab ``ritm`` vs the reference clicker) and the whole harness
step (``ritm`` + ``iou`` + ``disks`` vs the same three of the reference); targets: at least
as fast as the reference, and the harness under 5 ms a click. If the weight-free baselines
exist (``masklab.iis.baselines``), their seconds per click in the same loop are printed too.
"""

from __future__ import annotations

import importlib.util
import time
from typing import Any

import cv2
import numpy as np
import numpy.typing as npt
from scipy import ndimage

from _timing import agree, fmt_ms, format_line, make_record, measure_pair
from masklab.iis.clicks import Click
from masklab.iis.encode import disks
from masklab.iis.metrics import iou
from masklab.iis.robots import ritm

SEED = 20240611
H, W = 480, 640
N_SAMPLES = 8
N_CLICKS = 20
#: the timed loops visit every TIME_STRIDE-th state: all click indices, fewer repeats
TIME_STRIDE = 4
N_BASELINE_TARGETS = 2
N_BASELINE_CLICKS = 10
RADIUS = 5
HARNESS_TARGET_MS = 5.0

State = tuple[npt.NDArray[np.int8], npt.NDArray[np.bool_], list[Click]]


# --------------------------------------------------------------------------- reference (RITM)


def ref_click(
    gt: npt.NDArray[np.int8], pred: npt.NDArray[np.bool_], not_clicked: npt.NDArray[np.bool_]
) -> Click:
    """RITM's ``Clicker._get_next_click`` as described in reference/iis.md §1.2."""
    fn = np.logical_and(np.logical_and(gt == 1, np.logical_not(pred)), gt != -1)
    fp = np.logical_and(np.logical_and(gt == 0, pred), gt != -1)
    fn = np.pad(fn, ((1, 1), (1, 1)), "constant")
    fp = np.pad(fp, ((1, 1), (1, 1)), "constant")
    fn_dt = cv2.distanceTransform(fn.astype(np.uint8), cv2.DIST_L2, 0)[1:-1, 1:-1]
    fp_dt = cv2.distanceTransform(fp.astype(np.uint8), cv2.DIST_L2, 0)[1:-1, 1:-1]
    fn_dt = fn_dt * not_clicked
    fp_dt = fp_dt * not_clicked
    fn_max, fp_max = np.max(fn_dt), np.max(fp_dt)
    positive = fn_max > fp_max
    rows, cols = np.where(fn_dt == fn_max) if positive else np.where(fp_dt == fp_max)
    return Click(int(rows[0]), int(cols[0]), bool(positive))


def ref_iou(gt: npt.NDArray[np.int8], pred: npt.NDArray[np.bool_]) -> float:
    """RITM's ``get_iou``."""
    obj = gt == 1
    valid = gt != -1
    inter = np.sum(np.logical_and(np.logical_and(pred, obj), valid))
    union = np.sum(np.logical_and(np.logical_or(pred, obj), valid))
    return float(inter / union)


ROWS, COLS = np.mgrid[:H, :W]


def ref_disks(clicks: list[Click]) -> npt.NDArray[np.float32]:
    """RITM's ``DistMaps(use_disks=True)``: per click, ``dist^2 <= r^2`` over the whole image."""
    out = np.zeros((2, H, W), np.float32)
    for c in clicks:
        d2 = (ROWS - c.row) ** 2 + (COLS - c.col) ** 2
        ch = 0 if c.positive else 1
        out[ch] = np.maximum(out[ch], (d2 <= RADIUS * RADIUS).astype(np.float32))
    return out


def ref_step(gt: npt.NDArray[np.int8], pred: npt.NDArray[np.bool_], clicks: list[Click]) -> Any:
    not_clicked = np.ones((H, W), bool)
    for c in clicks:
        not_clicked[c.row, c.col] = False
    click = ref_click(gt, pred, not_clicked)
    return click, ref_iou(gt, pred), ref_disks([*clicks, click])


def ours_step(gt: npt.NDArray[np.int8], pred: npt.NDArray[np.bool_], clicks: list[Click]) -> Any:
    click = ritm(gt, pred, clicks)
    return click, iou(gt, pred), disks([*clicks, click], (H, W), radius=RADIUS)


# --------------------------------------------------------------------------- data


def make_target(rng: np.random.Generator) -> npt.NDArray[np.int8]:
    """One object (ellipse or star blob, 60-300 px) with an ignore band on part of its edge."""
    m = np.zeros((H, W), np.uint8)
    cx, cy = int(rng.integers(120, W - 120)), int(rng.integers(100, H - 100))
    size = float(rng.uniform(60, 300))
    if rng.random() < 0.5:
        axes = (int(size / 2), int(size / 2 * rng.uniform(0.4, 1.0)))
        cv2.ellipse(m, (cx, cy), axes, float(rng.uniform(0, 180)), 0, 360, 1, -1)
    else:
        t = np.sort(rng.uniform(0, 2 * np.pi, 40))
        r = size / 2 * (1 + 0.3 * np.cos(5 * t + rng.uniform(0, 6)) + rng.normal(0, 0.05, 40))
        pts = np.stack([cx + r * np.cos(t), cy + r * np.sin(t)], axis=1)
        cv2.fillPoly(m, [np.round(pts).astype(np.int32)], 1)
    gt = m.astype(np.int8)
    if rng.random() < 0.7:  # GrabCut-like unknown band on the upper half of the boundary
        band = cv2.morphologyEx(m, cv2.MORPH_GRADIENT, np.ones((5, 5), np.uint8)).astype(bool)
        band[cy:, :] = False
        gt[band] = -1
    return gt


def model_pred(rng: np.random.Generator, gt: npt.NDArray[np.int8], k: int) -> npt.NDArray[np.bool_]:
    """A prediction after ``k`` clicks: boundary shift, missed chunks and false blobs that
    shrink with ``k``."""
    obj = (gt == 1).astype(np.uint8)
    scale = 1.0 / np.sqrt(1 + k)
    shift = round(float(rng.normal(0, 5)) * scale)
    if shift > 0:
        obj = cv2.dilate(obj, np.ones((3, 3), np.uint8), iterations=shift)
    elif shift < 0:
        obj = cv2.erode(obj, np.ones((3, 3), np.uint8), iterations=-shift)
    ys, xs = np.nonzero(gt == 1)
    for _ in range(int(rng.integers(0, 4))):
        i = int(rng.integers(ys.size))
        cv2.circle(obj, (int(xs[i]), int(ys[i])), int(rng.uniform(5, 60) * scale) + 1, 0, -1)
    for _ in range(int(rng.integers(0, 3))):  # false blobs, mostly near the object
        i = int(rng.integers(ys.size))
        centre = (int(xs[i] + rng.normal(0, 80)), int(ys[i] + rng.normal(0, 80)))
        cv2.circle(obj, centre, int(rng.uniform(5, 50) * scale) + 1, 1, -1)
    return obj.astype(bool)


def make_states(rng: np.random.Generator) -> list[State]:
    """Every (target, previous prediction, past clicks) a 20-click run visits."""
    states: list[State] = []
    for _ in range(N_SAMPLES):
        gt = make_target(rng)
        pred = np.zeros((H, W), bool)
        clicks: list[Click] = []
        for k in range(N_CLICKS):
            states.append((gt, pred, list(clicks)))
            clicks.append(ritm(gt, pred, clicks))
            pred = model_pred(rng, gt, k) if rng.random() > 0.05 else gt == 1  # some perfect
    return states


def depth2(gt: npt.NDArray[np.int8], pred: npt.NDArray[np.bool_], c: Click) -> float:
    """Exact squared depth (SciPy's EDT, padded) of click ``c`` in the error map of its sign."""
    err = (gt == 1) & ~pred if c.positive else (gt == 0) & pred
    d = float(ndimage.distance_transform_edt(np.pad(err, 1))[c.row + 1, c.col + 1])
    return float(np.rint(d * d))


def exact_tie(
    gt: npt.NDArray[np.int8], pred: npt.NDArray[np.bool_], ours: Click, ref: Click
) -> bool:
    """``ours`` follows the rules where ``ref`` broke an exact tie by float rounding: the same
    exact depth, and ours the first in row-major order (same sign) or negative (FN = FP)."""
    if depth2(gt, pred, ours) != depth2(gt, pred, ref):
        return False
    if ours.positive == ref.positive:
        return (ours.row, ours.col) < (ref.row, ref.col)
    return not ours.positive


def check_agreement(states: list[State]) -> int:
    """Assert masklab and the reference agree on every state; return the exact ties seen."""
    ties = 0
    for i, (gt, pred, clicks) in enumerate(states):
        ours, theirs = ours_step(gt, pred, clicks), ref_step(gt, pred, clicks)
        agree(ours[1] == theirs[1], f"state {i}: iou {ours[1]} != {theirs[1]}")
        if ours[0] != theirs[0]:
            agree(
                exact_tie(gt, pred, ours[0], theirs[0]),
                f"state {i}: click {ours[0]} != reference {theirs[0]} and not an exact tie",
            )
            ties += 1
            continue
        agree(np.array_equal(ours[2], theirs[2]), f"state {i}: disk maps differ")
    return ties


# --------------------------------------------------------------------------- figures


def per_click(name: str, ours: Any, theirs: Any, n: int, peer: str) -> dict[str, Any]:
    ours_s, theirs_s = measure_pair(ours, theirs)
    rec = make_record(name, ours_s / n, theirs_s / n, peer=peer, target=1.0)
    print(format_line(rec), flush=True)
    return rec


def bench_harness() -> list[dict[str, Any]]:
    rng = np.random.default_rng(SEED)
    states = make_states(rng)
    n = len(states)
    errs = [int((((g == 1) & ~p) | ((g == 0) & p)).sum()) for g, p, _ in states]
    ties = check_agreement(states)
    print(
        f"  data: {N_SAMPLES} targets {W}x{H}, {n} robot states ({n // TIME_STRIDE} timed), error "
        f"{min(errs)}..{max(errs)} px (median {int(np.median(errs))}); clicks, IoU and disks "
        f"agree ({ties} exact distance ties broken by the reference's float rounding)",
        flush=True,
    )

    timed = states[::TIME_STRIDE]
    nt = len(timed)

    def robot_ours() -> None:
        for gt, pred, clicks in timed:
            ritm(gt, pred, clicks)

    def robot_ref() -> None:
        for gt, pred, clicks in timed:
            not_clicked = np.ones((H, W), bool)
            for c in clicks:
                not_clicked[c.row, c.col] = False
            ref_click(gt, pred, not_clicked)

    def harness_ours() -> None:
        for gt, pred, clicks in timed:
            ours_step(gt, pred, clicks)

    def harness_ref() -> None:
        for gt, pred, clicks in timed:
            ref_step(gt, pred, clicks)

    recs = [
        per_click(f"ritm robot/click {W}x{H}", robot_ours, robot_ref, nt, "ritm-ref"),
        per_click(f"harness step/click {W}x{H}", harness_ours, harness_ref, nt, "ritm-ref"),
        per_click(f"harness vs clicker {W}x{H}", harness_ours, robot_ref, nt, "ref clicker"),
    ]
    for rec in recs[1:]:
        rec["masklab_target_ms"] = HARNESS_TARGET_MS
        rec["masklab_ok"] = rec["masklab_ms"] < HARNESS_TARGET_MS
    verdict = "ok" if recs[1]["masklab_ok"] else "MISS"
    print(
        f"  harness {fmt_ms(recs[1]['masklab_ms'])} ms a click (target < {HARNESS_TARGET_MS:g} ms) "
        f"{verdict}",
        flush=True,
    )
    return recs


# --------------------------------------------------------------------------- baselines


def make_image(rng: np.random.Generator, gt: npt.NDArray[np.int8]) -> npt.NDArray[np.uint8]:
    """A textured RGB image whose object colour differs from the background's."""
    img = np.empty((H, W, 3), np.float32)
    img[:] = rng.uniform(40, 200, 3)
    obj = gt != 0
    img[obj] = rng.uniform(40, 200, 3)
    img += rng.normal(0, 18, (H, W, 3))
    return np.clip(img, 0, 255).astype(np.uint8)


def bench_baselines() -> list[dict[str, Any]]:
    """Seconds per click of the weight-free baselines in RITM's loop (model + harness)."""
    if importlib.util.find_spec("masklab.iis.baselines") is None:
        print("  baselines: masklab.iis.baselines not present, skipped", flush=True)
        return []
    from masklab.iis import baselines

    rng = np.random.default_rng(SEED + 1)
    gts = [make_target(rng) for _ in range(N_BASELINE_TARGETS)]
    images = [make_image(rng, gt) for gt in gts]
    recs = []
    for name in ("GraphCutModel", "RandomWalkerModel"):
        cls = getattr(baselines, name, None)
        if cls is None:
            print(f"  baselines: {name} not present, skipped", flush=True)
            continue
        try:
            model = cls()
        except ImportError as err:
            print(f"  baselines: {name} unavailable ({err}), skipped", flush=True)
            continue
        total = harness = 0.0
        clicks_run = 0
        ious: list[float] = []
        for gt, image in zip(gts, images, strict=True):
            t0 = time.perf_counter()
            z = model.initialize_z(image)
            pred = np.zeros((H, W), bool)
            clicks: list[Click] = []
            for _ in range(N_BASELINE_CLICKS):
                t1 = time.perf_counter()
                clicks.append(ritm(gt, pred, clicks))
                harness += time.perf_counter() - t1
                pcs = [(c.row, c.col) for c in clicks if c.positive]
                ncs = [(c.row, c.col) for c in clicks if not c.positive]
                y, z = model(image, z, pcs, ncs)
                t1 = time.perf_counter()
                pred = y > 0.49
                ious.append(iou(gt, pred))
                disks(clicks, (H, W), radius=RADIUS)
                harness += time.perf_counter() - t1
                clicks_run += 1
            total += time.perf_counter() - t0
        rec = make_record(
            f"{name} s/click {W}x{H}",
            total / clicks_run,
            harness / clicks_run,
            peer="harness",
            op="<=",
        )
        rec["final_iou_mean"] = float(np.mean(ious[N_BASELINE_CLICKS - 1 :: N_BASELINE_CLICKS]))
        print(
            format_line(rec) + f"  (mIoU@{N_BASELINE_CLICKS} {rec['final_iou_mean']:.3f})",
            flush=True,
        )
        recs.append(rec)
    return recs


def run() -> list[dict[str, Any]]:
    """The harness figures, then the baselines' seconds per click."""
    return bench_harness() + bench_baselines()


if __name__ == "__main__":
    run()
