"""The examples run as a user runs them (a subprocess), shortened."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def test_train_semantic_learns_the_demo_scenes(tmp_path):
    pytest.importorskip("torch")
    out = subprocess.run(
        [
            sys.executable,
            str(EXAMPLES / "train_semantic.py"),
            *("--steps", "60", "--every", "30", "--batch", "4"),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=tmp_path,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stderr.strip() == "", out.stderr[-2000:]  # no warnings either
    rows = re.findall(r"^step +(\d+) +loss +(\S+) +val mIoU (\S+)$", out.stdout, re.MULTILINE)
    assert [int(step) for step, _, _ in rows] == [0, 30, 60], out.stdout
    losses = [float(loss) for _, loss, _ in rows[1:]]
    mious = [float(miou) for _, _, miou in rows]
    assert losses[-1] < losses[0]
    assert mious[0] < 0.1  # an untrained net
    assert mious[-1] > 0.4, out.stdout  # seeded: 0.65 here; all background would be 0.22
    assert re.search(r"^done in [\d.]+ s$", out.stdout, re.MULTILINE)
