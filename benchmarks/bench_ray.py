"""The Ray Data engine against the local engine, and what 100 million masks would need.

Data: bench_formats' synthetic COCO val2017 (5,000 images of 640x480, ~36,000 polygon
instances; ``MASKLAB_BENCH_IMAGES`` scales it down). The same COCO -> VOC conversion
(annotations only) runs three ways: ``formats.convert`` with ``workers=1`` (one core),
``formats.convert`` with ``workers=CPUS`` (the local engine on every core), and
``masklab.ray.engine.convert`` on a local Ray cluster of every core here, started once
before timing (its start-up is printed, not counted). All outputs are checked byte for
byte and their reports compared before any figure is printed.

Figures: the Ray engine's wall time over the local engine's on the same cores (target
<= 1.5x); per-core throughput, one core's (masks/s with ``workers=1``) and the Ray
engine's per CPU; the capacity estimate that docs/scale.md works through, from the lower
of the two: cores for 100 million masks in one hour.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

from _timing import agree, format_line, make_record  # type: ignore[import-not-found]
from bench_formats import N_IMAGES, make_coco  # type: ignore[import-not-found]
from masklab import formats

TARGET_MASKS = 100_000_000
TARGET_SECONDS = 3600


def _tree(path: Path) -> str:
    h = hashlib.sha256()
    for p in sorted(path.rglob("*")):
        if p.is_file():
            h.update(p.relative_to(path).as_posix().encode())
            h.update(p.read_bytes())
    return h.hexdigest()


def _timed(fn: Any) -> tuple[float, Any]:
    start = time.perf_counter()
    out = fn()
    return time.perf_counter() - start, out


def capacity(masks_per_core_s: float) -> dict[str, float]:
    """Cores (and 16-core machines) to convert TARGET_MASKS in TARGET_SECONDS."""
    core_hours = TARGET_MASKS / masks_per_core_s / 3600
    cores = math.ceil(TARGET_MASKS / (masks_per_core_s * TARGET_SECONDS))
    return {"core_hours": core_hours, "cores": cores, "machines_16": math.ceil(cores / 16)}


def run() -> list[dict[str, Any]]:
    try:
        import ray

        from masklab.ray import engine
    except ImportError:
        print('  ray not installed: pip install "masklab[ray]" for this benchmark')
        return []
    tmp = Path(tempfile.mkdtemp(prefix="masklab-bench-ray-"))
    cpus = os.cpu_count() or 1
    try:
        data = make_coco(N_IMAGES)
        ann = tmp / "instances_val.json"
        ann.write_text(json.dumps(data))
        n_masks = len(data["annotations"])
        del data
        started, _ = _timed(
            lambda: ray.init(num_cpus=cpus, include_dashboard=False, log_to_driver=False)
        )
        # warm-up: Ray's workers imported masklab once
        engine.convert(ann, tmp / "warm", to="voc", images="none")
        one_s, one = _timed(
            lambda: formats.convert(ann, tmp / "one", to="voc", images="none", workers=1)
        )
        local_s, local = _timed(
            lambda: formats.convert(ann, tmp / "local", to="voc", images="none", workers=cpus)
        )
        ray_s, on_ray = _timed(lambda: engine.convert(ann, tmp / "ray", to="voc", images="none"))
        agree(_tree(tmp / "ray") == _tree(tmp / "one"), "ray and one-process outputs differ")
        agree(_tree(tmp / "local") == _tree(tmp / "one"), "local engine outputs differ")
        agree(on_ray.to_dict() == one.to_dict(), "ray and one-process reports differ")
        agree(local.to_dict() == one.to_dict(), "local engine reports differ")
        ray.shutdown()
        print(
            f"  data: {N_IMAGES} images, {n_masks} masks; Ray: {cpus} CPUs, "
            f"started in {started:.1f} s (not counted)"
        )
        rec = make_record(
            f"COCO -> VOC, Ray engine vs local ({cpus} CPUs each)",
            ray_s,
            local_s,
            peer=f"--workers {cpus}",
            target=1.5,
            op="<=",
        )
        per_core = n_masks / one_s
        ray_per_cpu = n_masks / ray_s / cpus
        cap = capacity(min(per_core, ray_per_cpu))
        rec["masks"] = n_masks
        rec["one_core_s"] = one_s
        rec["per_core_masks_s"] = per_core
        rec["ray_masks_s_per_cpu"] = ray_per_cpu
        rec["capacity_100m_1h"] = cap
        print(format_line(rec), flush=True)
        print(
            f"  one core (--workers 1) {one_s:.1f} s: {per_core:,.0f} masks/s; local engine "
            f"on {cpus} cores {local_s:.1f} s; Ray engine {ray_s:.1f} s: "
            f"{ray_per_cpu:,.0f} masks/s per CPU"
        )
        print(
            f"  100M masks at {min(per_core, ray_per_cpu):,.0f} masks/s a core: "
            f"{cap['core_hours']:,.1f} core-hours -> {cap['cores']:,} cores "
            f"for one hour ({cap['machines_16']} machines of 16 cores)"
        )
        return [rec]
    finally:
        if ray.is_initialized():
            ray.shutdown()
        shutil.rmtree(tmp, ignore_errors=True)
