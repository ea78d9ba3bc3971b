"""The weight-free baselines: they follow the model protocol, honour their click seeds, the
random walker solves Grady's system (a dense solve written here), and both reach IoU > 0.9
within 20 RITM clicks on a clean synthetic object."""

from __future__ import annotations

import sys

import cv2
import numpy as np
import pytest

from masklab.iis.baselines import GraphCutModel, RandomWalkerModel
from masklab.iis.loop import IISModel, full_inference
from masklab.iis.robots import ritm


def _scene(h: int, w: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A textured red ellipse on a noisy blue background, and its int8 target."""
    rng = np.random.default_rng(seed)
    target = np.zeros((h, w), np.uint8)
    cv2.ellipse(target, (w // 2, h // 2), (w // 4, h // 3), 20, 0, 360, 1, -1)
    yy, xx = np.mgrid[:h, :w]
    texture = 25 * np.sin(xx / 3.0) * np.cos(yy / 5.0)
    fg = np.stack([200 + texture, 70 + texture, 60 - texture], -1)
    bg = np.broadcast_to(np.array([60.0, 120.0, 200.0]), (h, w, 3))
    image = np.where(target[..., None] == 1, fg, bg) + rng.normal(0, 15, (h, w, 3))
    return np.clip(image, 0, 255).astype(np.uint8), target.astype(np.int8)


def _textured(h: int, w: int, seed: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """Harder: an ellipse with a bar sticking out, both sides striped, closer colours."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:h, :w]
    bg = np.stack(
        [120 + 40 * np.sin(xx / 17), 110 + 30 * np.cos(yy / 11), 100 + 20 * np.sin((xx + yy) / 23)],
        -1,
    )
    target = np.zeros((h, w), np.uint8)
    cv2.ellipse(target, (w // 2, h // 2), (w // 5, h // 4), 30, 0, 360, 1, -1)
    cv2.rectangle(target, (w // 2, h // 2), (w // 2 + w // 4, h // 2 + h // 12), 1, -1)
    fg = np.stack([150 + 30 * np.sin(xx / 5), 90 + 20 * np.cos(yy / 7), np.full((h, w), 80)], -1)
    image = np.where(target[..., None] == 1, fg, bg) + rng.normal(0, 20, (h, w, 3))
    return np.clip(image, 0, 255).astype(np.uint8), target.astype(np.int8)


def _iou(target: np.ndarray, pred: np.ndarray) -> float:
    obj = target == 1
    return float((obj & pred).sum() / (obj | pred).sum())


MODELS = {
    "graphcut": lambda: GraphCutModel(),
    "graphcut-reduced": lambda: GraphCutModel(max_side=64),
    "random-walker": lambda: RandomWalkerModel(),
    "random-walker-reduced": lambda: RandomWalkerModel(max_side=64),
}


@pytest.mark.parametrize("scene", [_scene, _textured])
@pytest.mark.parametrize("name", MODELS)
def test_reaches_090_within_20_ritm_clicks(name: str, scene):
    image, target = scene(120, 160)
    model = MODELS[name]()
    result = full_inference(model, ritm, image, target, 20, target_iou=0.9, keep_probabilities=True)
    assert result.probabilities is not None
    assert result.ious[-1] > 0.9  # stopped because it got there
    assert _iou(target, result.probabilities > 0.49) == pytest.approx(result.ious[-1])


@pytest.mark.parametrize("name", MODELS)
def test_protocol_and_hard_seeds(name: str):
    image, _ = _scene(96, 128, seed=1)
    model = MODELS[name]()
    assert isinstance(model, IISModel)
    z = model.initialize_z(image)
    y0 = model.initialize_y(image)
    assert y0.shape == (96, 128)
    assert not y0.any()
    y, z = model(image, z, [], [])  # no clicks: nothing
    assert y.dtype == np.float32
    assert not y.any()
    # a positive click on the object, a negative one inside it too (the model must obey both)
    pcs, ncs = [(48, 64)], [(48, 50)]
    y, z = model(image, z, pcs, ncs)
    assert y.dtype == np.float32
    assert y.shape == (96, 128)
    assert 0.0 <= y.min() <= y.max() <= 1.0
    rr, cc = np.mgrid[:96, :128]
    assert (y[(rr - 48) ** 2 + (cc - 64) ** 2 <= 16] == 1.0).all()
    assert (y[(rr - 48) ** 2 + (cc - 50) ** 2 <= 16] == 0.0).all()


def test_graphcut_keeps_its_last_labelling_in_z():
    image, _ = _scene(96, 128)
    model = GraphCutModel()
    z = model.initialize_z(image)
    assert z["labels"] is None
    _, z = model(image, z, [(48, 64)], [])
    assert z["labels"].shape == (96, 128)
    only_negative, _ = model(image, model.initialize_z(image), [], [(5, 5)])
    assert not only_negative.any()


def _dense_walker(image: np.ndarray, seeds: dict[tuple[int, int], float], beta: float):
    """Grady's Dirichlet problem with dense matrices and explicit loops over the grid."""
    h, w = image.shape[:2]
    img = image.astype(np.float64) / 255.0
    edges = []
    for r in range(h):
        for c in range(w):
            for dr, dc in ((0, 1), (1, 0)):
                if r + dr < h and c + dc < w:
                    g = float(((img[r, c] - img[r + dr, c + dc]) ** 2).sum())
                    edges.append((r * w + c, (r + dr) * w + c + dc, g))
    mean = np.mean([g for *_, g in edges])
    lap = np.zeros((h * w, h * w))
    for i, j, g in edges:
        wt = np.exp(-beta * g / mean) + 1e-6
        lap[i, j] -= wt
        lap[j, i] -= wt
        lap[i, i] += wt
        lap[j, j] += wt
    fixed = {r * w + c: v for (r, c), v in seeds.items()}
    free = [i for i in range(h * w) if i not in fixed]
    idx = list(fixed)
    x_fixed = np.array([fixed[i] for i in idx])
    x = np.zeros(h * w)
    x[idx] = x_fixed
    x[free] = np.linalg.solve(lap[np.ix_(free, free)], -lap[np.ix_(free, idx)] @ x_fixed)
    return x.reshape(h, w)


def test_random_walker_solves_gradys_system():
    rng = np.random.default_rng(5)
    image = rng.integers(0, 256, (7, 9, 3), dtype=np.uint8)
    image[:, 5:] //= 4  # a darker right part: an edge to follow
    model = RandomWalkerModel(radius=0, beta=3.0)
    z = model.initialize_z(image)
    y, _ = model(image, z, [(3, 2)], [(2, 6)])
    seeds = {(r, c): 0.0 for r in range(7) for c in range(9) if r in (0, 6) or c in (0, 8)}
    seeds[(3, 2)] = 1.0
    seeds[(2, 6)] = 0.0
    expect = _dense_walker(image, seeds, 3.0)
    np.testing.assert_allclose(y, expect, atol=1e-5)
    assert 0.0 < y[3, 4] < 1.0


def test_random_walker_without_background_seeds_says_object_everywhere():
    image, _ = _scene(32, 40)
    model = RandomWalkerModel(border_background=False)
    y, _ = model(image, model.initialize_z(image), [(16, 20)], [])
    np.testing.assert_allclose(y, 1.0)


def test_random_walker_names_the_extra_when_scipy_is_missing(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setitem(sys.modules, "scipy.sparse", None)
    with pytest.raises(ImportError, match=r'pip install "masklab\[iis\]"'):
        RandomWalkerModel()


def test_bad_image_is_a_type_error():
    with pytest.raises(TypeError, match="uint8"):
        GraphCutModel().initialize_z(np.zeros((4, 4), np.uint8))
