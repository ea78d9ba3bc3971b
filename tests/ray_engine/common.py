"""The oracle of the Ray engine tests: the local engine on the same input."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from masklab import formats
from masklab.formats import ConversionReport
from masklab.ray import engine


def both(
    src: Path, tmp_path: Path, to: str, **kw: Any
) -> tuple[ConversionReport, ConversionReport]:
    """``src`` converted to ``to`` by ``formats.convert`` (at tmp_path/local) and by the
    Ray engine (at tmp_path/ray): their reports."""
    local = formats.convert(src, tmp_path / "local", to=to, **kw)
    on_ray = engine.convert(src, tmp_path / "ray", to=to, **kw)
    return local, on_ray
