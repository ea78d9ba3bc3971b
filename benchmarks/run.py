"""Run every ``benchmarks/bench_*.py`` and record the figures (``make bench``).

Prints a header with the machine and versions, one line per figure, and appends one JSON
line per figure to ``benchmarks/results/<UTC timestamp>.jsonl``. A missed target is printed
as MISS but does not fail the run (this is a measurement, not a test); a benchmark whose
masklab and pycocotools results disagree, or that crashes, makes the run exit 1.
"""

from __future__ import annotations

import datetime as dt
import importlib.util
import json
import sys
import time
import traceback
from pathlib import Path
from types import ModuleType
from typing import Any

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"
sys.path.insert(0, str(HERE))

from _timing import ROUNDS, machine, settle_allocator, versions  # noqa: E402


def _load(path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location(path.stem, path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot import {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[path.stem] = module
    spec.loader.exec_module(module)
    return module


def _header(stamp: str) -> None:
    m, v = machine(), versions()
    print(f"masklab benchmarks  {stamp}")
    print(
        f"machine   {m['cpu']}, {m['cpu_count']} CPUs ({m['cpu_usable']} usable), {m['platform']}"
    )
    print("versions  " + ", ".join(f"{k} {val}" for k, val in v.items()))
    print("ratio     peer / masklab (speed-up) unless the target reads '<=' (masklab / peer)")
    print(f"timing    best of {ROUNDS} interleaved round medians; allocator settled first")
    print()


def main() -> int:
    now = dt.datetime.now(dt.UTC)
    stamp = now.strftime("%Y-%m-%dT%H:%M:%SZ")
    _header(stamp)
    settle_allocator()
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / ".gitkeep").touch()
    out_path = RESULTS / f"{now.strftime('%Y%m%dT%H%M%SZ')}.jsonl"

    records: list[dict[str, Any]] = []
    failed: list[str] = []
    t_start = time.perf_counter()
    wanted = set(sys.argv[1:])  # e.g. `run.py core scale`; all when empty
    for path in sorted(HERE.glob("bench_*.py")):
        if wanted and path.stem.removeprefix("bench_") not in wanted:
            continue
        print(f"[{path.stem}]", flush=True)
        try:
            module_records = _load(path).run()
        except Exception:
            traceback.print_exc()
            failed.append(path.stem)
            continue
        for rec in module_records:
            rec = {"run": stamp, "module": path.stem, **rec}
            records.append(rec)
            with out_path.open("a", encoding="utf-8") as f:
                f.write(json.dumps(rec) + "\n")

    targeted = [r for r in records if r["ok"] is not None]
    missed = [r["figure"] for r in targeted if not r["ok"]]
    print()
    print(
        f"{len(records)} figures in {time.perf_counter() - t_start:.1f} s, "
        f"{len(targeted) - len(missed)}/{len(targeted)} targets met"
        + (f"; MISS: {', '.join(missed)}" if missed else "")
    )
    if records:
        print(f"results   {out_path.relative_to(HERE.parent)}")
    if failed:
        print(f"FAILED (no figures): {', '.join(failed)}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
