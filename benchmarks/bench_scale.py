"""Streaming: peak memory of a conversion must not grow with the number of images.

A png-masks dataset (images/ + masks/ class-index PNGs, 128x128, a few objects each) of
1,000 and of 10,000 images is made with plain PIL; each is converted to VOC in a fresh
Python process whose peak resident memory (ru_maxrss) is read. Target: the 10,000-image
peak within 1.25x of the 1,000-image peak.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from _timing import format_line, make_record  # type: ignore[import-not-found]

SIZES = (1_000, 10_000)
SIDE = 128

# VmHWM, not ru_maxrss: Linux carries ru_maxrss over exec, so a child would report its
# parent's peak; VmHWM belongs to the child's own address space.
CHILD = """
import re, sys, time
from masklab import formats
t = time.perf_counter()
report = formats.convert(sys.argv[1], sys.argv[2], to="voc", source_format="png-masks")
dt = time.perf_counter() - t
assert report.samples == int(sys.argv[3]), report.samples
hwm = re.search(r"VmHWM:\\s+(\\d+) kB", open("/proc/self/status").read()).group(1)
print(hwm, dt, len(report.problems))
"""


def make_dataset(root: Path, n: int, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    image = Image.fromarray(rng.integers(0, 255, (SIDE, SIDE, 3), dtype=np.uint8))
    for i in range(n):
        m = np.zeros((SIDE, SIDE), np.uint8)
        for _ in range(3):
            x, y = rng.integers(0, SIDE - 20, 2)
            m[y : y + rng.integers(4, 20), x : x + rng.integers(4, 20)] = rng.integers(1, 4)
        image.save(root / "images" / f"{i:06d}.png", compress_level=1)
        Image.fromarray(m).save(root / "masks" / f"{i:06d}.png")


def run() -> list[dict[str, Any]]:
    tmp = Path(tempfile.mkdtemp(prefix="masklab-scale-"))
    peaks = {}
    try:
        for n in SIZES:
            src = tmp / f"src{n}"
            make_dataset(src, n)
            out = subprocess.run(
                [sys.executable, "-c", CHILD, str(src), str(tmp / f"voc{n}"), str(n)],
                capture_output=True,
                text=True,
                check=True,
            )
            kib, seconds, problems = out.stdout.split()
            peaks[n] = int(kib) / 1024
            print(
                f"  {n:>6} images: peak {peaks[n]:.0f} MiB, {float(seconds):.1f} s "
                f"({n / float(seconds):.0f} images/s), {problems} problems",
                flush=True,
            )
            shutil.rmtree(src)
            shutil.rmtree(tmp / f"voc{n}")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    small, big = SIZES
    rec = make_record(
        f"peak memory {big} / {small} images",
        peaks[big] / 1e3,
        peaks[small] / 1e3,
        peer=f"{small} images",
        target=1.25,
        op="<=",
    )
    rec["peak_mib"] = {str(k): v for k, v in peaks.items()}
    print(format_line(rec).replace(" ms", " MiB"), flush=True)  # the *_ms fields hold MiB here
    return [rec]
