"""EarlyFusion / IntermediateFusion against a plain-torch net with smp's interface."""

from __future__ import annotations

import copy

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from masklab.iis.fusion import (  # noqa: E402
    EarlyFusion,
    IntermediateFusion,
    TinyUNet,
)
from masklab.iis.loop import IISModel  # noqa: E402


@pytest.fixture(autouse=True)
def _one_thread_seeded():
    """One CPU thread (fast and steady on a loaded machine) and a fixed torch seed."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    with torch.random.fork_rng():
        torch.manual_seed(0)
        yield
    torch.set_num_threads(threads)


def tiny() -> TinyUNet:
    return TinyUNet(channels=(8, 16), decoder_channels=8).eval()


class StarDecoderUNet(TinyUNet):
    """The same net with the older smp decoder signature, ``forward(*features)``."""

    def __init__(self) -> None:
        super().__init__(channels=(8, 16), decoder_channels=8)
        inner = self.decoder

        class Star(torch.nn.Module):
            def __init__(self) -> None:
                super().__init__()
                self.inner = inner

            def forward(self, *features):
                return self.inner(list(features))

        self.decoder = Star()

    def forward(self, x):
        return self.segmentation_head(self.decoder(*self.encoder(x)))


def disk(center, size_hw, radius=5):
    rows, cols = np.mgrid[: size_hw[0], : size_hw[1]]
    return ((rows - center[0]) ** 2 + (cols - center[1]) ** 2 <= radius**2).astype(np.float32)


# --------------------------------------------------------------------------- the tiny net


def test_tiny_unet_has_the_smp_interface():
    net = tiny()
    x = torch.randn(2, 3, 32, 48)
    features = net.encoder(x)
    assert [tuple(f.shape) for f in features] == [
        (2, 3, 32, 48),
        (2, 8, 16, 24),
        (2, 16, 8, 12),
    ]
    assert net.encoder.out_channels == (3, 8, 16)
    assert net.encoder.output_stride == 4
    assert tuple(net.segmentation_head(net.decoder(features)).shape) == (2, 1, 32, 48)


# --------------------------------------------------------------------------- early fusion


def test_early_fusion_widens_the_first_conv_keeping_rgb_weights():
    net = tiny()
    old = net.encoder.stages[1][0].weight.detach().clone()
    model = EarlyFusion(net)
    new = model.net.encoder.stages[1][0]
    assert new.in_channels == 6
    assert torch.equal(new.weight[:, :3], old)
    assert torch.count_nonzero(new.weight[:, 3:]) == 0


@pytest.mark.parametrize("make", [tiny, StarDecoderUNet], ids=["features", "star-features"])
def test_early_fusion_at_init_is_the_plain_net_for_any_clicks(make):
    net = make().eval()
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        plain = net(x)
        model = EarlyFusion(net).eval()
        fused = model.forward(x, torch.rand(2, 3, 32, 32))
    assert torch.allclose(fused, plain, atol=1e-6)
    assert torch.count_nonzero(plain - plain.mean()) > 0  # not a constant output


def test_early_fusion_without_prev_mask_takes_two_aux_channels():
    model = EarlyFusion(tiny(), prev_mask=False)
    assert model.aux_channels == 2
    assert model.net.encoder.stages[1][0].in_channels == 5
    with pytest.raises(ValueError, match=r"aux must be \(B, 2, H, W\)"):
        model.forward(torch.zeros(1, 3, 32, 32), torch.zeros(1, 3, 32, 32))


def test_the_protocol_shapes_and_state():
    model = EarlyFusion(tiny())
    image = np.random.default_rng(0).integers(0, 256, (37, 45, 3), dtype=np.uint8)
    assert isinstance(model, IISModel)
    z = model.initialize_z(image)
    y0 = model.initialize_y(image)
    assert y0.shape == (37, 45)
    assert y0.dtype == np.float32
    assert not y0.any()
    assert not z["prev_mask"].any()
    y, z2 = model(image, z, [(10, 12)], [(30, 40)])
    assert y.shape == (37, 45)
    assert y.dtype == np.float32
    assert y.min() >= 0.0
    assert y.max() <= 1.0
    assert z2["prev_mask"] is y
    assert not z["prev_mask"].any()  # the caller's state is not changed
    assert model.training  # the mode is restored after an eval-mode prediction


def test_the_protocol_feeds_prev_mask_and_clicks_where_they_belong(monkeypatch):
    model = EarlyFusion(tiny())
    seen = []

    def spy(image, aux):
        seen.append((image.shape, aux.detach().clone()))
        return torch.full((image.shape[0], 1, *image.shape[-2:]), 2.0)

    monkeypatch.setattr(model, "fused_logits", spy)
    image = np.zeros((30, 35, 3), np.uint8)
    prev = np.random.default_rng(1).random((30, 35)).astype(np.float32)
    y, _ = model(image, {"prev_mask": prev}, [(4, 6), (20, 30)], [(25, 3)])
    (shape, aux) = seen[0]
    assert shape == (1, 3, 32, 36)  # padded to multiples of the encoder's stride, 4
    assert aux[0, :, 30:, :].abs().sum() == 0
    assert aux[0, :, :, 35:].abs().sum() == 0
    assert np.array_equal(aux[0, 0, :30, :35].numpy(), prev)
    expected_pos = np.maximum(disk((4, 6), (30, 35)), disk((20, 30), (30, 35)))
    assert np.array_equal(aux[0, 1, :30, :35].numpy(), expected_pos)
    assert np.array_equal(aux[0, 2, :30, :35].numpy(), disk((25, 3), (30, 35)))
    assert np.allclose(y, 1 / (1 + np.exp(-2.0)))  # sigmoid of the logits, cropped back
    assert y.shape == (30, 35)


def test_disks_radius_is_the_encoders():
    model = EarlyFusion(tiny(), radius=2)
    maps = model.click_maps([(5, 5)], [], (11, 11))
    assert np.array_equal(maps[0], disk((5, 5), (11, 11), radius=2))
    assert not maps[1].any()


def test_preprocess_normalises_with_imagenet_statistics():
    model = EarlyFusion(tiny())
    image = np.zeros((2, 2, 3), np.uint8)
    image[0, 1] = (255, 0, 128)
    x = model.preprocess(image)
    assert tuple(x.shape) == (1, 3, 2, 2)
    expected = [(1 - 0.485) / 0.229, (0 - 0.456) / 0.224, (128 / 255 - 0.406) / 0.225]
    assert np.allclose(x[0, :, 0, 1].numpy(), expected, atol=1e-6)


def test_wrappers_need_the_smp_interface_and_a_3_channel_conv():
    with pytest.raises(TypeError, match=r"has no \.encoder"):
        EarlyFusion(torch.nn.Conv2d(3, 1, 3))
    with pytest.raises(ValueError, match="no submodule 'nope'"):
        EarlyFusion(tiny(), first_conv="nope")
    with pytest.raises(ValueError, match="Conv2d taking 3 channels"):
        EarlyFusion(tiny(), first_conv="stages.2.0")
    with pytest.raises(ValueError, match="unknown encoding"):
        EarlyFusion(tiny(), encoding="squares")


def test_state_dict_round_trip():
    a = EarlyFusion(tiny()).eval()
    with torch.no_grad():
        a.net.encoder.stages[1][0].weight[:, 3:].normal_()  # as if trained
    b = EarlyFusion(tiny()).eval()
    b.load_state_dict(a.state_dict())
    x, aux = torch.randn(1, 3, 16, 16), torch.rand(1, 3, 16, 16)
    with torch.no_grad():
        assert torch.equal(a.forward(x, aux), b.forward(x, aux))


# --------------------------------------------------------------------------- intermediate fusion


def test_intermediate_fusion_with_zero_scale_is_the_plain_net():
    net = tiny()
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        plain = net(x)
        model = IntermediateFusion(net, scale_init=0.0).eval()
        fused = model.forward(x, torch.rand(2, 3, 32, 32))
    assert torch.equal(fused, plain)


def test_intermediate_fusion_adds_the_click_features_at_the_first_conv_only():
    net = tiny()
    model = IntermediateFusion(net).eval()
    assert model.stage == "stages.1.0"
    plain_net = copy.deepcopy(net)  # its hook copy runs with no pending features
    outputs = {}

    def keep(key):
        return lambda _m, _i, out: outputs.__setitem__(key, out.detach().clone())

    model.net.encoder.stages[1][0].register_forward_hook(keep("fused"))
    plain_net.encoder.stages[1][0].register_forward_hook(keep("plain"))
    x, aux = torch.randn(2, 3, 32, 32), torch.rand(2, 3, 32, 32)
    with torch.no_grad():
        fused = model.forward(x, aux)
        plain = plain_net(x)
        added = model.click_features(aux)
    assert tuple(added.shape) == (2, 8, 16, 16)  # the conv's channels at its stride
    assert torch.allclose(outputs["fused"], outputs["plain"] + added, atol=1e-6)
    assert not torch.equal(fused, plain)
    with torch.no_grad():
        assert torch.equal(net(x), plain)  # outside the wrapper the hook does nothing


def test_intermediate_fusion_at_a_deeper_stage_and_gradients_reach_the_branch():
    model = IntermediateFusion(tiny(), stage="stages.2").train()
    assert tuple(model.click_branch[-1].weight.shape[:2]) == (16, 16)
    assert model.click_branch[-1].stride == (4, 4)  # stages.2 gives stride-4 features
    x, aux = torch.randn(2, 3, 30, 30), torch.rand(2, 3, 30, 30)
    logits = model.forward(x, aux)
    assert tuple(logits.shape) == (2, 1, 30, 30)
    torch.autograd.backward(logits.sum())
    assert model.click_scale.grad is not None
    assert model.click_scale.grad != 0
    assert model.click_branch[0].weight.grad.abs().sum() > 0


def test_intermediate_fusion_rejects_an_unknown_stage():
    with pytest.raises(ValueError, match="no submodule 'stem'"):
        IntermediateFusion(tiny(), stage="stem")


def test_intermediate_fusion_protocol():
    model = IntermediateFusion(tiny())
    image = np.full((20, 28, 3), 100, np.uint8)
    y, z = model(image, model.initialize_z(image), [(5, 5)], [])
    assert y.shape == (20, 28)
    assert z["prev_mask"] is y
