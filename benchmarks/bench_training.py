"""Training input: DataLoader throughput of masklab's torch datasets against the tutorial way.

Data: 200 seeded 512x512 scenes (smooth colour gradients, 3-8 filled ellipses and discs of
VOC classes, sensor noise) written as a Pascal VOC folder (``JPEGImages/*.jpg`` quality 90,
``SegmentationClass/*.png`` palette class indices with void borders) and imported into an
embedded store (SQLite catalog, local blobs; the JPEGs copied in, the masks re-encoded by
the store).

Peer: the dataset of the segmentation tutorials, reading the same files: PIL opens the JPEG
(``.convert("RGB")``) and the mask PNG, the image becomes a tensor as torchvision's
``to_tensor`` does (permute, ``float().div(255)``), the mask ``torch.as_tensor(..., int64)``.
masklab: ``SegmentationDataset(version, task="semantic")`` through ``SegmentationLoader``
(uint8 out of the workers, expanded here), and, without a target, through a plain
``DataLoader(collate_fn=masklab.torch.collate)``. All give float32 ``(8, 3, 512, 512)``
images and int64 ``(8, 512, 512)`` targets, checked equal before timing; each
``DataLoader(batch_size=8, num_workers=2, persistent_workers=True)``, warmed by one epoch.

Timing: epochs of 200 samples, the loaders interleaved for ``ROUNDS`` rounds; a figure is
the best epoch of each (a shared machine only ever adds time), as ms a sample (1 / samples
a second). Worker and main-process CPU time per sample is printed beside it. Target (the
issue's): masklab >= 1.5x the tutorial dataset's samples a second.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset

from _timing import ROUNDS, agree, format_line, make_record  # type: ignore[import-not-found]
from masklab.core.labels import voc_colormap
from masklab.store import Store
from masklab.store.importer import import_path
from masklab.torch import SegmentationDataset, SegmentationLoader, collate

SEED = 20240611
N = 200
SIZE = 512
BATCH = 8
WORKERS = 2
TICK = os.sysconf("SC_CLK_TCK")


# --------------------------------------------------------------------------- data


def write_voc(root: Path) -> None:
    """``N`` seeded scenes as a VOC segmentation folder."""
    rng = np.random.default_rng(SEED)
    (root / "JPEGImages").mkdir(parents=True)
    (root / "SegmentationClass").mkdir()
    palette = voc_colormap(256).reshape(-1).tolist()
    yy, xx = np.mgrid[0:SIZE, 0:SIZE].astype(np.float32)
    for i in range(N):
        base, grad = rng.uniform(40, 215, 3), rng.uniform(-0.25, 0.25, (2, 3))
        image = base + xx[..., None] * grad[0] + yy[..., None] * grad[1]
        mask = np.zeros((SIZE, SIZE), np.uint8)
        for _ in range(int(rng.integers(3, 9))):
            cls = int(rng.integers(1, 21))
            center = (int(rng.integers(0, SIZE)), int(rng.integers(0, SIZE)))
            shape = np.zeros_like(mask)
            if rng.random() < 0.5:
                cv2.circle(shape, center, int(rng.integers(20, 120)), 1, -1)
            else:
                axes = (int(rng.integers(20, 160)), int(rng.integers(10, 90)))
                cv2.ellipse(shape, center, axes, float(rng.uniform(0, 180)), 0, 360, 1, -1)
            mask[shape == 1] = cls
            image[shape == 1] = rng.uniform(0, 255, 3)
            edge = cv2.morphologyEx(shape, cv2.MORPH_GRADIENT, np.ones((3, 3), np.uint8))
            mask[edge == 1] = 255  # VOC's void border
        noisy = image + rng.normal(0, 6, image.shape)
        rgb = np.clip(noisy, 0, 255).astype(np.uint8)
        Image.fromarray(rgb).save(root / "JPEGImages" / f"{i:05d}.jpg", quality=90)
        png = Image.fromarray(mask, mode="P")
        png.putpalette(palette)
        png.save(root / "SegmentationClass" / f"{i:05d}.png")


class TutorialDataset(Dataset[tuple[torch.Tensor, torch.Tensor]]):
    """The segmentation tutorials' dataset: PIL, then torchvision's ``to_tensor`` steps."""

    def __init__(self, root: Path) -> None:
        self.images = sorted((root / "JPEGImages").glob("*.jpg"))
        self.masks = [root / "SegmentationClass" / f"{p.stem}.png" for p in self.images]

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        image = Image.open(self.images[i]).convert("RGB")
        mask = Image.open(self.masks[i])
        x = torch.from_numpy(np.array(image, np.uint8, copy=True))
        x = x.view(image.size[1], image.size[0], 3).permute(2, 0, 1).contiguous()
        x = x.to(dtype=torch.float32).div(255)
        y = torch.as_tensor(np.array(mask), dtype=torch.int64)
        return x, y


# --------------------------------------------------------------------------- timing


def _cpu_s(pid: int) -> float:
    with open(f"/proc/{pid}/stat", encoding="ascii") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def _pids(loader: DataLoader[Any]) -> list[int]:
    it = loader._iterator  # persistent workers: the live iterator holds them
    return [w.pid for w in it._workers] if it is not None else []


def epoch(loader: Iterable[Any], pids: list[int]) -> tuple[float, float, float]:
    """(seconds, worker CPU s, main CPU s) of one pass."""
    w0, m0 = sum(_cpu_s(p) for p in pids), _cpu_s(os.getpid())
    t0 = time.perf_counter()
    n = 0
    for images, _ in loader:
        n += len(images)
    dt = time.perf_counter() - t0
    agree(n == N, f"an epoch gave {n} samples, not {N}")
    return dt, sum(_cpu_s(p) for p in pids) - w0, _cpu_s(os.getpid()) - m0


def check_agreement(ours: Iterable[Any], theirs: Iterable[Any], name: str) -> None:
    """The first two batches: identical float32 images and int64 targets."""
    for k, ((xa, ya), (xb, yb)) in enumerate(zip(ours, theirs, strict=False)):
        agree(xa.dtype == xb.dtype == torch.float32, f"{name}: image dtypes differ")
        agree(ya.dtype == yb.dtype == torch.int64, f"{name}: target dtypes differ")
        agree(torch.equal(xa, xb), f"{name}: images of batch {k} differ from PIL's")
        agree(torch.equal(ya, yb), f"{name}: targets of batch {k} differ from the mask PNGs")
        if k == 1:
            return


def run() -> list[dict[str, Any]]:
    tmp = Path(tempfile.mkdtemp(prefix="masklab-bench-training-"))
    try:
        t0 = time.perf_counter()
        write_voc(tmp / "voc")
        store = Store(home=tmp / "store")
        import_path(store, tmp / "voc", dataset="bench", version="v1", format="voc", ingest=True)
        version = store.version("bench:v1")
        print(
            f"  data: {N} JPEG + PNG 512x512 samples, imported in {time.perf_counter() - t0:.1f} s",
            flush=True,
        )
        ds = SegmentationDataset(version, task="semantic")
        agree(ds.train_ids.names[0] == "background" and len(ds) == N, "unexpected label map")
        kw: dict[str, Any] = {"batch_size": BATCH, "num_workers": WORKERS}
        loaders: dict[str, DataLoader[Any]] = {
            "tutorial": DataLoader(TutorialDataset(tmp / "voc"), persistent_workers=True, **kw),
            "loader": SegmentationLoader(ds, persistent_workers=True, **kw),
            "plain": DataLoader(ds, collate_fn=collate, persistent_workers=True, **kw),
        }
        check_agreement(loaders["loader"], loaders["tutorial"], "SegmentationLoader")
        check_agreement(loaders["plain"], loaders["tutorial"], "DataLoader + collate")
        best: dict[str, tuple[float, float, float]] = {}
        for loader in loaders.values():  # warm-up epoch: workers up, caches warm
            for _ in loader:
                pass
        for _ in range(ROUNDS):
            for name, loader in loaders.items():
                got = epoch(loader, _pids(loader))
                if name not in best or got[0] < best[name][0]:
                    best[name] = got
        store.close()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    for name, (dt, worker_s, main_s) in best.items():
        print(
            f"  {name:<9} {N / dt:6.0f} samples/s  CPU a sample: workers "
            f"{worker_s / N * 1e3:.2f} ms, main {main_s / N * 1e3:.2f} ms",
            flush=True,
        )
    per = {name: dt / N for name, (dt, _, _) in best.items()}
    records = []
    for name, figure, target in (
        ("loader", "SegmentationLoader 512x512, 2 wk", 1.5),
        ("plain", "DataLoader+collate 512x512, 2 wk", None),
    ):
        rec = make_record(figure, per[name], per["tutorial"], peer="PIL tutorial", target=target)
        rec["samples_per_s"] = {"masklab": N / best[name][0], "peer": N / best["tutorial"][0]}
        print(format_line(rec), flush=True)
        records.append(rec)
    return records
