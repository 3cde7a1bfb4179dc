"""A compact residual U-Net for SIM reconstruction, denoising and widefield→SR.

Three scales with residual blocks and skip connections; super-resolving models end in a
sub-pixel (pixel-shuffle) upsampler to the 2× grid. With ``stem=2`` the input is first folded
into 2×2 pixel blocks (pixel unshuffle: lossless, four channels per frame) and the U-Net runs
at half the camera resolution, a quarter of the compute (as in efficient SR networks);
the head unfolds the output again. The network predicts a correction to a
simple estimate of the output (the mean input frame, bilinearly upsampled), so it learns the
missing detail rather than the whole image. With ``uncertainty`` a second output channel
gives, per pixel, the scale of a Laplace distribution of the error (as in CARE's
probabilistic networks): the model says where it expects to be wrong. Small on purpose: a
few MB of weights and live-rate inference on a CPU.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import TypeVar

import torch
from torch import nn
from torch.nn import functional as F

Conv = TypeVar("Conv", nn.Conv2d, nn.ConvTranspose2d)


def _zeroed(layer: Conv) -> Conv:
    """``layer`` with its weights and bias set to zero (it starts by adding nothing)."""
    nn.init.zeros_(layer.weight)
    if layer.bias is not None:
        nn.init.zeros_(layer.bias)
    return layer


@dataclass(frozen=True)
class ModelConfig:
    """Architecture hyper-parameters (stored with the weights)."""

    in_channels: int
    upscale: int = 2
    width: int = 32
    blocks_per_scale: int = 1
    uncertainty: bool = False  # second output channel: per-pixel log Laplace scale
    stem: int = 1  # pixel-unshuffle factor at the input (2: the U-Net runs at half resolution)
    context_levels: int = 0  # coarser levels below the bottleneck (each halves the resolution)
    temporal_stats: bool = False  # add the frames' temporal statistics as input channels
    base_channel: int | None = None  # the base estimate: this input channel (None: the mean)
    # the last N input channels are constant planes (the geometry): read once per stem
    # block instead of folded into stem² identical channels
    constant_planes: int = 0
    stem_kernel: int = 3  # the first convolution's kernel (1: a per-block linear embedding)

    @property
    def out_channels(self) -> int:
        return 2 if self.uncertainty else 1

    @property
    def size_multiple(self) -> int:
        """Input height and width must be multiples of this (the stem and every pooling)."""
        return 4 * self.stem * 2**self.context_levels

    @property
    def feature_channels(self) -> int:
        """Channels the first stage sees per input pixel (frames, then their statistics)."""
        return self.in_channels + (len(TEMPORAL_STATS) if self.temporal_stats else 0)

    @property
    def stem_channels(self) -> int:
        """Channels the first stage sees per U-Net pixel (folded planes, then constants)."""
        varying = self.feature_channels - self.constant_planes
        return varying * self.stem * self.stem + self.constant_planes

    def to_dict(self) -> dict[str, int | bool | None]:
        return asdict(self)


TEMPORAL_STATS = ("mean", "std", "lag1")


def temporal_statistics(x: torch.Tensor) -> torch.Tensor:
    """(B, T, H, W) frames -> (B, 3, H, W): mean, standard deviation, signed root of the
    lag-1 autocovariance, all linear in brightness.

    The standard deviation holds shot noise and blinking; the lag-1 term keeps only
    fluctuations that last beyond one frame (shot and read noise are independent between
    frames), the second-order statistics SOFI and eSRRF's TAC2 build on.
    """
    mean = x.mean(1, keepdim=True)
    d = x - mean
    std = d.pow(2).mean(1, keepdim=True).clamp_min(0).sqrt()
    lag = (d[:, 1:] * d[:, :-1]).mean(1, keepdim=True)
    return torch.cat([mean, std, lag.sign() * lag.abs().sqrt()], 1)


class _ResBlock(nn.Module):
    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels, 3, padding=1)
        # zero-initialised residual branch: each block starts as the identity, which keeps
        # early training stable (without it wider models diverged at the learning-rate peak)
        self.conv2 = _zeroed(nn.Conv2d(channels, channels, 3, padding=1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv2(F.gelu(self.conv1(x)))


class _ContextBranch(nn.Module):
    """Coarser levels below the bottleneck whose output is added back to it.

    Each level halves the resolution, so the network sees structure (and noise) over
    hundreds of pixels at little cost: it can tell a real large-scale change from the
    low-frequency part of the noise, which a shallow U-Net passes through (in dark regions
    about half of the noise at scales of ten pixels and more). Channels stay at the
    bottleneck's width. The last layer is zero-initialised, so adding the branch to trained
    weights keeps what they compute.
    """

    def __init__(self, channels: int, levels: int, blocks: int) -> None:
        super().__init__()
        self.down = nn.ModuleList(_stage(channels, channels, blocks) for _ in range(levels))
        ups = [nn.ConvTranspose2d(channels, channels, 2, stride=2) for _ in range(levels)]
        _zeroed(ups[0])
        self.up = nn.ModuleList(ups)
        self.merge = nn.ModuleList(
            _stage(2 * channels, channels, blocks) for _ in range(levels - 1)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skips = [x]
        for stage in self.down:
            skips.append(stage(F.max_pool2d(skips[-1], 2)))
        y = skips.pop()
        for up, merge in zip(self.up[:0:-1], self.merge[::-1], strict=True):
            y = merge(torch.cat([up(y), skips.pop()], 1))
        return x + self.up[0](y)


def _stage(c_in: int, c_out: int, blocks: int, kernel: int = 3) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, kernel, padding=kernel // 2),
        nn.GELU(),
        *[_ResBlock(c_out) for _ in range(blocks)],
    )


class SRUNet(nn.Module):
    """Input (B, C, H, W) normalised frames -> output (B, K, upscale·H, upscale·W).

    Channel 0 is the image; with ``config.uncertainty`` channel 1 parametrises the expected
    absolute error per pixel (:func:`error_scale` maps it to image units).
    """

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.config = config
        w, b, s = config.width, config.blocks_per_scale, config.stem
        self.enc1 = _stage(config.stem_channels, w, b, config.stem_kernel)
        self.enc2 = _stage(w, 2 * w, b)
        self.enc3 = _stage(2 * w, 4 * w, b)
        self.deep = (
            _ContextBranch(4 * w, config.context_levels, b) if config.context_levels else None
        )
        self.up2 = nn.ConvTranspose2d(4 * w, 2 * w, 2, stride=2)
        self.dec2 = _stage(4 * w, 2 * w, b)
        self.up1 = nn.ConvTranspose2d(2 * w, w, 2, stride=2)
        self.dec1 = _stage(2 * w, w, b)
        r = config.upscale * s  # output pixels per U-Net pixel, per axis
        # zero: the untrained model returns its base estimate
        self.head = nn.Sequential(_zeroed(nn.Conv2d(w, r * r, 3, padding=1)), nn.PixelShuffle(r))
        # the error head reads the image path's features without training them, so
        # learning where it will be wrong never changes what the model reconstructs
        # (zero last layer: it starts from one moderate error scale everywhere)
        self.error_head = (
            nn.Sequential(
                nn.Conv2d(w, w, 3, padding=1),
                nn.GELU(),
                _zeroed(nn.Conv2d(w, r * r, 3, padding=1)),
                nn.PixelShuffle(r),
            )
            if config.uncertainty
            else None
        )

    def _fold(self, features: torch.Tensor) -> torch.Tensor:
        """The input at the U-Net's resolution: stem×stem blocks folded into channels, the
        constant planes read once per block."""
        s, n = self.config.stem, self.config.constant_planes
        if s == 1:
            return features
        if not n:
            return F.pixel_unshuffle(features, s)
        varying, constant = features[:, :-n], features[:, -n:, ::s, ::s]
        return torch.cat([F.pixel_unshuffle(varying, s), constant], 1)

    def _embed(self, features: torch.Tensor) -> torch.Tensor:
        """The first stage. A per-block linear embedding (``stem_kernel`` 1) of the folded
        planes is a convolution with a stem×stem kernel and stride on the planes themselves:
        the same sums, without materialising the folded input."""
        s, n = self.config.stem, self.config.constant_planes
        first = self.enc1[0]
        if s == 1 or self.config.stem_kernel != 1 or not isinstance(first, nn.Conv2d):
            return self.enc1(self._fold(features))
        varying = features[:, : features.shape[1] - n]
        c = varying.shape[1]
        weight = first.weight[:, : c * s * s].reshape(-1, c, s, s)
        y = F.conv2d(varying, weight, first.bias, stride=s)
        if n:
            y = y + F.conv2d(features[:, -n:, ::s, ::s], first.weight[:, c * s * s :])
        return self.enc1[1:](y)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        m = self.config.size_multiple
        if h % m or w % m:
            raise ValueError(f"input size must be a multiple of {m}, got {h}x{w}")
        features = torch.cat([x, temporal_statistics(x)], 1) if self.config.temporal_stats else x
        e1 = self._embed(features)
        e2 = self.enc2(F.max_pool2d(e1, 2))
        e3 = self.enc3(F.max_pool2d(e2, 2))
        if self.deep is not None:
            e3 = self.deep(e3)
        d2 = self.dec2(torch.cat([self.up2(e3), e2], 1))
        d1 = self.dec1(torch.cat([self.up1(d2), e1], 1))
        c = self.config.base_channel
        base = x.mean(1, keepdim=True) if c is None else x[:, c : c + 1]
        if self.config.upscale > 1:
            base = F.interpolate(
                base, scale_factor=self.config.upscale, mode="bilinear", align_corners=False
            )
        image = base + self.head(d1)
        if self.error_head is None:
            return image
        return torch.cat([image, self.error_head(d1.detach())], 1)


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


MIN_ERROR_SCALE = 1e-3  # of the input's brightness scale: below any error worth predicting


def error_scale(raw: torch.Tensor) -> torch.Tensor:
    """Per-pixel error scale from the uncertainty channel: positive, smooth, never stuck."""
    return F.softplus(raw) + MIN_ERROR_SCALE
