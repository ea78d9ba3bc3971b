"""Turn a segmentation network into an interactive segmentation (IIS) model.

Two wrappers, written against the interface ``segmentation_models_pytorch`` (smp) models
have, so a user's smp model drops in (``reference/iis.md`` §1.4, §2.3):

* ``net.encoder``: ``forward(x) -> list`` of feature maps, the first the input itself;
* ``net.decoder``: ``forward(features)`` (smp >= 0.4) or ``forward(*features)`` (older smp):
  which one is read from the signature of ``decoder.forward``;
* ``net.segmentation_head``: decoder output -> logits ``(B, 1, h, w)``, resized to the
  input when smaller.

:class:`EarlyFusion` feeds the click maps to the network as extra input channels: the
encoder's first convolution is widened (RGB weights copied, the new channels' weights
zero), so at initialisation the model computes exactly what the network computed, for any
clicks (iislib's ``EarlySMP``, but keeping a pretrained net intact). :class:`IntermediateFusion`
passes the click maps through a small branch (RITM's "Conv1S") and adds the result to the
output of one encoder module (by default the first convolution), as RITM's IT-M models do.

Both are ``torch.nn.Module`` s whose ``forward(image, aux) -> logits`` trains them
(:func:`masklab.iis.train.train_iis`) and whose ``__call__`` is the IIS model protocol of
:mod:`masklab.iis.loop`: ``model(image, z, pcs, ncs) -> (probabilities, z)``. The auxiliary
input ``aux`` is ``(B, 3, H, W)``: the previous probabilities, then the positive and the
negative click maps (``(B, 2, H, W)`` with ``prev_mask=False``).

:class:`TinyUNet` is a small plain-torch U-Net with the smp interface, for tests, examples
and CPU runs; torchvision, which smp and timm need, is not required. ::

    from masklab.iis.fusion import EarlyFusion, TinyUNet

    model = EarlyFusion(TinyUNet())       # or EarlyFusion(smp.Unet("resnet34", classes=1))
    z = model.initialize_z(image)
    probs, z = model(image, z, [(40, 52)], [])   # one positive click at row 40, column 52
"""

from __future__ import annotations

import inspect
from collections.abc import Sequence
from typing import Any, Literal, TypeAlias

import numpy as np
import numpy.typing as npt

try:
    import torch
    from torch import nn
    from torch.nn import functional as F
except ImportError as err:  # pragma: no cover - depends on the environment
    raise ImportError(
        'masklab.iis.fusion needs PyTorch: pip install "masklab[torch]" (for the CPU-only '
        "build, install torch first from the CPU index: pip install torch==2.13.0 "
        "--index-url https://download.pytorch.org/whl/cpu)"
    ) from err

from masklab.iis import encode as _encode
from masklab.iis.clicks import Click

__all__ = [
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "ClickFusion",
    "EarlyFusion",
    "Encoding",
    "IntermediateFusion",
    "TinyUNet",
]

Encoding: TypeAlias = Literal["disks", "distance_maps", "gaussians"]
ENCODINGS: tuple[Encoding, ...] = ("disks", "distance_maps", "gaussians")
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
Point: TypeAlias = Sequence[int]  # (row, col); a Click works too


# --------------------------------------------------------------------------- the smp interface


def _part(net: nn.Module, name: str) -> nn.Module:
    part = getattr(net, name, None)
    if not isinstance(part, nn.Module):
        raise TypeError(
            f"{type(net).__name__} has no .{name} module: the IIS wrappers need the "
            "segmentation_models_pytorch interface (.encoder, .decoder, .segmentation_head)"
        )
    return part


def _submodule(root: nn.Module, name: str, where: str) -> nn.Module:
    try:
        return root.get_submodule(name)
    except AttributeError as err:
        names = [n for n, _ in root.named_modules() if n][:12]
        raise ValueError(
            f"{where} has no submodule {name!r}; its first modules are {names}"
        ) from err


def _first_conv(encoder: nn.Module, in_channels: int = 3) -> str:
    """Dotted name of the first ``Conv2d`` taking ``in_channels`` (smp's own rule)."""
    for name, module in encoder.named_modules():
        if isinstance(module, nn.Conv2d) and module.in_channels == in_channels:
            return str(name)
    raise ValueError(
        f"net.encoder has no Conv2d with {in_channels} input channels; name the module "
        "to use with first_conv=/stage= (a dotted name inside net.encoder)"
    )


def _takes_star_features(decoder: nn.Module) -> bool:
    params = inspect.signature(decoder.forward).parameters.values()
    return any(p.kind is inspect.Parameter.VAR_POSITIONAL for p in params)


# --------------------------------------------------------------------------- the base wrapper


class ClickFusion(nn.Module):
    """Base of the fusion wrappers: preprocessing, click maps, padding and the IIS protocol.

    Subclasses implement :meth:`fused_logits` on padded tensors. Options (keyword-only in
    the subclasses): ``prev_mask`` (feed the previous probabilities, the iterative IT-M
    models of RITM), ``encoding`` of the clicks (:mod:`masklab.iis.encode`: ``"disks"`` of
    ``radius`` px as RITM, ``"distance_maps"``, ``"gaussians"``), ``mean``/``std`` of the
    input normalisation (on RGB in [0, 1]; ImageNet's by default, as smp's encoders expect)
    and ``pad_multiple`` (inputs are zero-padded at the bottom and right to a multiple of
    it and the logits cropped back; default ``net.encoder.output_stride``, else 32).
    """

    mean: torch.Tensor  # buffers (1, 3, 1, 1), saved in the state dict
    std: torch.Tensor

    def __init__(
        self,
        net: nn.Module,
        *,
        prev_mask: bool = True,
        encoding: Encoding = "disks",
        radius: float = 5.0,
        mean: Sequence[float] = IMAGENET_MEAN,
        std: Sequence[float] = IMAGENET_STD,
        pad_multiple: int | None = None,
    ) -> None:
        super().__init__()
        if encoding not in ENCODINGS:
            raise ValueError(f"unknown encoding {encoding!r}; choose one of {ENCODINGS}")
        if len(mean) != 3 or len(std) != 3 or min(std) <= 0:
            raise ValueError(f"mean and std need 3 values, std > 0; got {mean}, {std}")
        encoder = _part(net, "encoder")
        self._star = _takes_star_features(_part(net, "decoder"))
        _part(net, "segmentation_head")
        self.net = net
        self.prev_mask = prev_mask
        self.encoding: Encoding = encoding
        self.radius = float(radius)
        if pad_multiple is None:
            stride = getattr(encoder, "output_stride", 32)
            pad_multiple = stride if isinstance(stride, int) else 32
        if pad_multiple < 1:
            raise ValueError(f"pad_multiple must be >= 1, got {pad_multiple}")
        self.pad_multiple = int(pad_multiple)
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, 3, 1, 1))

    @property
    def aux_channels(self) -> int:
        """Channels of ``aux``: 3 (previous probabilities, positive, negative) or 2."""
        return 3 if self.prev_mask else 2

    @property
    def device(self) -> torch.device:
        """Where the wrapper's parameters are."""
        return self.mean.device

    # ---------------------------------------------------------------- inputs

    def preprocess(self, images: npt.ArrayLike) -> torch.Tensor:
        """uint8 RGB images ``(B, H, W, 3)`` or one ``(H, W, 3)`` -> normalised ``(B, 3, H, W)``."""
        array = np.asarray(images)
        if array.ndim == 3:
            array = array[None]
        if array.ndim != 4 or array.shape[-1] != 3:
            raise ValueError(f"images must be (H, W, 3) or (B, H, W, 3) RGB, got {array.shape}")
        x = torch.from_numpy(np.ascontiguousarray(array)).to(self.device)
        x = x.permute(0, 3, 1, 2).float().div_(255.0)
        return (x - self.mean) / self.std

    def click_maps(
        self, positives: Sequence[Point], negatives: Sequence[Point], size_hw: tuple[int, int]
    ) -> npt.NDArray[np.float32]:
        """The ``(2, H, W)`` float32 positive and negative maps of ``(row, col)`` clicks."""
        clicks = [Click(int(p[0]), int(p[1]), True) for p in positives]
        clicks += [Click(int(p[0]), int(p[1]), False) for p in negatives]
        if self.encoding == "disks":
            maps = _encode.disks(clicks, size_hw, radius=self.radius)
        elif self.encoding == "distance_maps":
            maps = _encode.distance_maps(clicks, size_hw)
        else:
            maps = _encode.gaussians(clicks, size_hw)
        return np.asarray(maps, dtype=np.float32)

    def aux_input(
        self,
        prev: torch.Tensor,
        positives: Sequence[Sequence[Point]],
        negatives: Sequence[Sequence[Point]],
    ) -> torch.Tensor:
        """``aux`` for a batch: ``prev`` ``(B, 1, H, W)`` and each image's click lists."""
        h, w = prev.shape[-2:]
        maps = np.stack(
            [self.click_maps(p, n, (h, w)) for p, n in zip(positives, negatives, strict=True)]
        )
        clicks = torch.from_numpy(maps).to(prev.device)
        return torch.cat([prev, clicks], dim=1) if self.prev_mask else clicks

    # ---------------------------------------------------------------- torch

    def forward(self, image: torch.Tensor, aux: torch.Tensor) -> torch.Tensor:
        """Logits ``(B, 1, H, W)`` of normalised images ``(B, 3, H, W)`` and ``aux``."""
        if image.ndim != 4 or image.shape[1] != 3:
            raise ValueError(f"image must be (B, 3, H, W), got {tuple(image.shape)}")
        if aux.shape[0] != image.shape[0] or aux.shape[1] != self.aux_channels:
            raise ValueError(
                f"aux must be (B, {self.aux_channels}, H, W) for B = {image.shape[0]} "
                f"(prev_mask={self.prev_mask}), got {tuple(aux.shape)}"
            )
        if aux.shape[-2:] != image.shape[-2:]:
            raise ValueError(f"aux {tuple(aux.shape)} and image {tuple(image.shape)} differ")
        h, w = image.shape[-2:]
        pad_h, pad_w = -h % self.pad_multiple, -w % self.pad_multiple
        if pad_h or pad_w:
            image = F.pad(image, (0, pad_w, 0, pad_h))
            aux = F.pad(aux, (0, pad_w, 0, pad_h))
        logits = self.fused_logits(image, aux.to(image.dtype))
        return logits[..., :h, :w]

    def fused_logits(self, image: torch.Tensor, aux: torch.Tensor) -> torch.Tensor:
        """Logits of padded inputs; what each fusion scheme defines."""
        raise NotImplementedError

    def run_net(self, x: torch.Tensor) -> torch.Tensor:
        """encoder -> decoder -> segmentation_head, logits resized to ``x`` when smaller."""
        features = _part(self.net, "encoder")(x)
        decoder = _part(self.net, "decoder")
        out = decoder(*features) if self._star else decoder(features)
        logits = _part(self.net, "segmentation_head")(out)
        if not isinstance(logits, torch.Tensor) or logits.ndim != 4 or logits.shape[1] != 1:
            shape = tuple(logits.shape) if isinstance(logits, torch.Tensor) else type(logits)
            raise ValueError(
                f"net.segmentation_head must give logits (B, 1, h, w), got {shape}: build the "
                "net with one class (smp: classes=1, activation=None)"
            )
        if logits.shape[-2:] != x.shape[-2:]:
            logits = F.interpolate(logits, size=x.shape[-2:], mode="bilinear", align_corners=False)
        return logits

    # ---------------------------------------------------------------- the IIS protocol

    def initialize_z(self, image: npt.ArrayLike, target: Any = None) -> dict[str, Any]:
        """The state before the first click: the previous probabilities, all zero."""
        h, w = np.asarray(image).shape[:2]
        return {"prev_mask": np.zeros((h, w), np.float32)}

    def initialize_y(self, image: npt.ArrayLike) -> npt.NDArray[np.float32]:
        """The prediction before the first click: all zero."""
        h, w = np.asarray(image).shape[:2]
        return np.zeros((h, w), np.float32)

    @torch.no_grad()
    def predict(
        self,
        image: npt.ArrayLike,
        positives: Sequence[Point],
        negatives: Sequence[Point],
        prev_mask: npt.ArrayLike | None = None,
    ) -> npt.NDArray[np.float32]:
        """Probabilities ``(H, W)`` float32 for one uint8 RGB image and its clicks.

        Runs in eval mode (the mode is restored afterwards) without gradients.
        """
        x = self.preprocess(image)
        h, w = x.shape[-2:]
        prev = torch.zeros((1, 1, h, w), device=x.device)
        if prev_mask is not None:
            prev[0, 0] = torch.from_numpy(np.asarray(prev_mask, dtype=np.float32)).to(x.device)
        aux = self.aux_input(prev, [positives], [negatives])
        was_training = self.training
        self.eval()
        try:
            probs = torch.sigmoid(self.forward(x, aux))
        finally:
            self.train(was_training)
        return np.ascontiguousarray(probs[0, 0].float().cpu().numpy())

    def __call__(
        self,
        x: npt.ArrayLike,
        z: dict[str, Any],
        pcs: Sequence[Point],
        ncs: Sequence[Point],
    ) -> tuple[npt.NDArray[np.float32], dict[str, Any]]:
        """The IIS protocol: image, state and the clicks so far -> ``(probabilities, state)``.

        This replaces ``nn.Module.__call__``: call :meth:`forward` for tensors.
        """
        y = self.predict(x, pcs, ncs, z.get("prev_mask"))
        return y, {**z, "prev_mask": y}


# --------------------------------------------------------------------------- early fusion


class EarlyFusion(ClickFusion):
    """Early fusion: the click maps are extra input channels of the network.

    The encoder's first ``Conv2d`` taking 3 channels (or the one named by ``first_conv``, a
    dotted name inside ``net.encoder``) is replaced by one taking ``3 + aux_channels``,
    with the RGB weights copied and the new weights zero: at initialisation the output is
    the network's own for any clicks, so pretrained weights are kept. (RITM's other early
    scheme, "DMF", maps RGB + maps to 3 channels with 1x1 convs in front of the network
    instead; widening changes nothing at start, which is why it was chosen.) ``net`` is
    changed in place and owned by the wrapper. Other options: :class:`ClickFusion`.

    >>> model = EarlyFusion(TinyUNet())
    >>> model.net.encoder.stages[1][0].in_channels
    6
    """

    def __init__(
        self,
        net: nn.Module,
        *,
        first_conv: str | None = None,
        prev_mask: bool = True,
        encoding: Encoding = "disks",
        radius: float = 5.0,
        mean: Sequence[float] = IMAGENET_MEAN,
        std: Sequence[float] = IMAGENET_STD,
        pad_multiple: int | None = None,
    ) -> None:
        super().__init__(
            net,
            prev_mask=prev_mask,
            encoding=encoding,
            radius=radius,
            mean=mean,
            std=std,
            pad_multiple=pad_multiple,
        )
        encoder = _part(net, "encoder")
        name = _first_conv(encoder) if first_conv is None else first_conv
        old = _submodule(encoder, name, "net.encoder")
        if not isinstance(old, nn.Conv2d) or old.in_channels != 3 or old.groups != 1:
            raise ValueError(
                f"net.encoder.{name} must be an ungrouped Conv2d taking 3 channels, got {old}"
            )
        new = nn.Conv2d(
            3 + self.aux_channels,
            old.out_channels,
            old.kernel_size,  # type: ignore[arg-type]
            stride=old.stride,  # type: ignore[arg-type]
            padding=old.padding,  # type: ignore[arg-type]
            dilation=old.dilation,  # type: ignore[arg-type]
            bias=old.bias is not None,
            padding_mode=old.padding_mode,
            device=old.weight.device,
            dtype=old.weight.dtype,
        )
        with torch.no_grad():
            new.weight.zero_()
            new.weight[:, :3] = old.weight
            if old.bias is not None and new.bias is not None:
                new.bias.copy_(old.bias)
        parent_name, _, child = name.rpartition(".")
        parent = _submodule(encoder, parent_name, "net.encoder") if parent_name else encoder
        setattr(parent, child, new)
        self.first_conv = name

    def fused_logits(self, image: torch.Tensor, aux: torch.Tensor) -> torch.Tensor:
        """Logits of ``cat(image, aux)`` through the widened network."""
        return self.run_net(torch.cat([image, aux], dim=1))


# --------------------------------------------------------------------------- intermediate fusion


class IntermediateFusion(ClickFusion):
    """Intermediate fusion: click features added to one encoder module's output (RITM Conv1S).

    ``aux`` goes through ``1x1 conv (hidden) -> LeakyReLU(0.2) -> conv with the module's
    stride to its channels``, times a learnable ``scale`` (``scale_init`` 0.05, as RITM),
    and is added to the output of ``net.encoder``'s module ``stage`` (a dotted name; by
    default its first ``Conv2d``, RITM's "after the first stem conv"; for an smp ResNet
    ``stage="relu"`` adds after conv1-bn1-relu exactly as RITM's HRNet does).

    What it relies on: a forward hook on that module (so any encoder works, whatever its
    ``forward``; smp >= 0.4 encoders no longer list every stage in ``get_stages()``), the
    module running once per encoder forward and giving a ``(B, C, h, w)`` tensor; its
    channels and stride are measured once with a probe forward. Outside this wrapper the
    hook does nothing, so ``net`` alone still computes the plain network.
    """

    def __init__(
        self,
        net: nn.Module,
        *,
        stage: str | None = None,
        hidden: int = 16,
        scale_init: float = 0.05,
        prev_mask: bool = True,
        encoding: Encoding = "disks",
        radius: float = 5.0,
        mean: Sequence[float] = IMAGENET_MEAN,
        std: Sequence[float] = IMAGENET_STD,
        pad_multiple: int | None = None,
    ) -> None:
        super().__init__(
            net,
            prev_mask=prev_mask,
            encoding=encoding,
            radius=radius,
            mean=mean,
            std=std,
            pad_multiple=pad_multiple,
        )
        encoder = _part(net, "encoder")
        self.stage = _first_conv(encoder) if stage is None else stage
        module = _submodule(encoder, self.stage, "net.encoder")
        channels, stride = self._probe(encoder, module)
        kernel, padding = (3, 1) if stride <= 2 else (stride, 0)
        self.click_branch = nn.Sequential(
            nn.Conv2d(self.aux_channels, hidden, 1),
            nn.LeakyReLU(0.2),
            nn.Conv2d(hidden, channels, kernel, stride=stride, padding=padding),
        )
        self.click_scale = nn.Parameter(torch.tensor(float(scale_init)))
        self._pending: torch.Tensor | None = None
        module.register_forward_hook(self._add_clicks)

    def _probe(self, encoder: nn.Module, module: nn.Module) -> tuple[int, int]:
        size = 2 * max(self.pad_multiple, 16)
        seen: list[torch.Tensor] = []
        handle = module.register_forward_hook(lambda _m, _i, out: seen.append(out))
        was_training = encoder.training
        encoder.eval()
        try:
            with torch.no_grad():
                param = next(encoder.parameters(), None)
                device = param.device if param is not None else None
                encoder(torch.zeros((1, 3, size, size), device=device))
        finally:
            handle.remove()
            encoder.train(was_training)
        if not seen or not isinstance(seen[0], torch.Tensor) or seen[0].ndim != 4:
            raise ValueError(
                f"net.encoder.{self.stage} did not give a (B, C, h, w) tensor in a forward "
                "pass; name another module with stage="
            )
        out = seen[0]
        return int(out.shape[1]), max(1, size // int(out.shape[-1]))

    def _add_clicks(self, _module: nn.Module, _inputs: Any, output: torch.Tensor) -> Any:
        pending, self._pending = self._pending, None  # added once per forward
        if pending is None:
            return None
        if pending.shape[-2:] != output.shape[-2:]:
            pending = F.interpolate(
                pending, size=output.shape[-2:], mode="bilinear", align_corners=False
            )
        return output + pending.to(output.dtype)

    def click_features(self, aux: torch.Tensor) -> torch.Tensor:
        """``scale * branch(aux)``: what is added to the ``stage`` module's output."""
        features: torch.Tensor = self.click_branch(aux)
        return self.click_scale * features

    def fused_logits(self, image: torch.Tensor, aux: torch.Tensor) -> torch.Tensor:
        """Logits of ``image`` with the click features added inside the encoder."""
        self._pending = self.click_features(aux)
        try:
            logits = self.run_net(image)
            if self._pending is not None:
                raise RuntimeError(
                    f"net.encoder.{self.stage} did not run in net.encoder.forward; "
                    "name a module it calls with stage="
                )
        finally:
            self._pending = None
        return logits


# --------------------------------------------------------------------------- a tiny U-Net


def _block(cin: int, cout: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU(inplace=True),
        nn.Conv2d(cout, cout, 3, padding=1, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU(inplace=True),
    )


class _TinyEncoder(nn.Module):
    def __init__(self, channels: Sequence[int]) -> None:
        super().__init__()
        self.out_channels = (3, *channels)
        self.output_stride = 2 ** len(channels)
        self.stages = nn.ModuleList(
            [nn.Identity()]
            + [_block(cin, cout, 2) for cin, cout in zip(self.out_channels, channels, strict=False)]
        )

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        features = []
        for stage in self.stages:
            x = stage(x)
            features.append(x)
        return features


class _TinyDecoder(nn.Module):
    def __init__(self, encoder_channels: Sequence[int], channels: int) -> None:
        super().__init__()
        deep = list(encoder_channels[1:])[::-1]  # deepest first, the input left out
        skips = [*deep[1:], 0]
        ins = [deep[0], *[channels] * (len(deep) - 1)]
        self.blocks = nn.ModuleList(
            [_block(cin + skip, channels) for cin, skip in zip(ins, skips, strict=True)]
        )

    def forward(self, features: list[torch.Tensor]) -> torch.Tensor:
        deep = features[1:][::-1]
        x = deep[0]
        for i, block in enumerate(self.blocks):
            x = F.interpolate(x, scale_factor=2.0, mode="nearest")
            if i + 1 < len(deep):
                x = torch.cat([x, deep[i + 1]], dim=1)
            x = block(x)
        return x


class TinyUNet(nn.Module):
    """A small U-Net with smp's interface (``encoder``/``decoder``/``segmentation_head``).

    ``channels`` per encoder stage (each halves the resolution; the decoder comes back to
    full resolution with ``decoder_channels``); one output channel of logits. For tests,
    examples and CPU training, not for accuracy.

    >>> net = TinyUNet(channels=(8, 16))
    >>> tuple(net(torch.zeros(2, 3, 32, 32)).shape)
    (2, 1, 32, 32)
    """

    def __init__(self, *, channels: Sequence[int] = (16, 32, 64), decoder_channels: int = 16):
        super().__init__()
        if not channels:
            raise ValueError("TinyUNet needs at least one encoder stage")
        self.encoder = _TinyEncoder(channels)
        self.decoder = _TinyDecoder(self.encoder.out_channels, decoder_channels)
        self.segmentation_head = nn.Conv2d(decoder_channels, 1, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits ``(B, 1, H, W)``; H and W multiples of ``encoder.output_stride``."""
        out: torch.Tensor = self.segmentation_head(self.decoder(self.encoder(x)))
        return out
