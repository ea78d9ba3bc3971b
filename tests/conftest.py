from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

settings.register_profile(
    "ci",
    max_examples=150,
    deadline=None,
    print_blob=True,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
settings.register_profile(
    "dev",
    max_examples=100,
    deadline=None,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci" if os.environ.get("CI") else "dev"))

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


@pytest.fixture
def shared_data():
    """Path to ../shared/data/<folder>; skips (naming the path) when it is absent."""

    def get(*parts: str) -> Path:
        path = SHARED_DATA.joinpath(*parts)
        if not path.exists():
            pytest.skip(f"real sample file not found: {path} (clone ../shared beside the repo)")
        return path

    return get


@pytest.fixture(autouse=True)
def _own_masklab_home(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch):
    """Every test gets its own MASKLAB_HOME: nothing writes the user's store or the repo's."""
    monkeypatch.setenv("MASKLAB_HOME", str(tmp_path_factory.mktemp("masklab-home")))
    monkeypatch.delenv("MASKLAB_CATALOG", raising=False)
    monkeypatch.delenv("MASKLAB_BLOBS", raising=False)
