"""``masklab._workers``: ordered results over spawned processes, one thread a worker."""

from __future__ import annotations

import math

import cv2
import pytest

from masklab._workers import one_core, ordered_map


def _drain(results, into: list) -> None:
    for value in results:
        into.append(value)


def test_results_come_in_input_order():
    assert list(ordered_map(math.isqrt, [k * k for k in range(40)], workers=2)) == list(range(40))


def test_an_error_is_raised_at_its_place_after_the_results_before_it():
    got: list[float] = []
    results = ordered_map(math.sqrt, [4, 9, -1, 16], workers=2)
    with pytest.raises(ValueError, match="math domain error"):
        _drain(results, got)
    assert got == [2.0, 3.0]


def test_each_worker_runs_opencv_on_one_thread():
    if cv2.getNumThreads() == 1:
        pytest.skip("OpenCV runs one thread here anyway: nothing to tell apart")
    assert set(ordered_map(_cv2_threads, range(4), workers=2)) == {1}


def _cv2_threads(_: int) -> int:
    return int(cv2.getNumThreads())


def test_one_core_sets_one_opencv_thread_and_restores_the_count():
    before = cv2.getNumThreads()
    with one_core():
        assert cv2.getNumThreads() == 1
    assert cv2.getNumThreads() == before
