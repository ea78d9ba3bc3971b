"""Ray and pyarrow, imported on first use; ImportError naming the extra when missing."""

from __future__ import annotations

from typing import Any

INSTALL = 'masklab.ray needs Ray Data: pip install "masklab[ray]"'


def require() -> Any:
    """The ``ray`` module with Ray Data loaded; ImportError naming the extra otherwise."""
    try:
        import pyarrow  # noqa: F401
        import ray
        import ray.data
    except ImportError as err:
        raise ImportError(f"{INSTALL} (import failed: {err})") from err
    return ray
