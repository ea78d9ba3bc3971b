"""One local Ray cluster (2 CPUs) for the Ray tests, started in the test process and stopped
after the last of them."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="package")
def ray_cluster():
    ray = pytest.importorskip("ray")
    pytest.importorskip("ray.data")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()
