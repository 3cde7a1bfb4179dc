"""dl-smlm's network: a small U-Net from a few consecutive frames to per-pixel emitter maps.

In the spirit of DECODE (Speiser et al., Nat. Methods 2021): the input is ``context``
consecutive frames (the frame localised in the middle) in photoelectrons / ``INPUT_SCALE``;
the output, on the camera grid, holds for every pixel the probability that an emitter's
centre lies in it, the emitter's sub-pixel offset from the pixel centre, its photons, a
standard deviation of each of these three (the network's own uncertainty, trained by a
Gaussian negative log-likelihood) and the background under it. Temporal context lets it
tell an emitter that stays on from a neighbour that switches.

Channels of :meth:`SMLMNet.forward`'s output (:data:`CHANNELS`), already mapped to their
ranges: ``prob`` in (0, 1); ``dx``/``dy`` in (-1, 1) camera pixels from the pixel centre;
``photons`` (kilo-photoelectrons, > 0); ``sigma_x``/``sigma_y`` (pixels) and
``sigma_photons`` (kilo-photoelectrons), all > 0; ``background`` (photoelectrons per pixel
/ ``INPUT_SCALE``, >= 0). The logit of ``prob`` is returned too, for a stable loss.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn

INPUT_SCALE = 100.0  # photoelectrons per unit of the network's input
PHOTON_SCALE = 1000.0  # photoelectrons per unit of its photon output
CHANNELS = ("prob", "dx", "dy", "photons", "sigma_x", "sigma_y", "sigma_photons", "background")
MIN_SIGMA = 0.005  # pixels (or kilo-photoelectrons): the smallest uncertainty it may claim


@dataclass(frozen=True)
class SMLMNetConfig:
    """The architecture: frames in, channels at full resolution and below, downsamplings."""

    context: int = 3  # consecutive frames in (odd; the middle one is localised)
    full: int = 16  # channels at the camera's resolution
    width: int = 32  # channels at half resolution (twice that below)
    depth: int = 2  # downsamplings (the first from full to half resolution)

    def to_dict(self) -> dict[str, int]:
        return asdict(self)


def _block(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, padding=1),
        nn.ELU(),
        nn.Conv2d(cout, cout, 3, padding=1),
        nn.ELU(),
    )


def _down(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 2, stride=2), nn.ELU(), _block(cout, cout))


class SMLMNet(nn.Module):
    """U-Net from ``(B, context, H, W)`` frames to ``(B, 8, H, W)`` maps (H, W: any size;
    padded internally to a multiple of 2**depth). One convolution runs at the camera's
    resolution on the way in and two on the way out; the rest at half resolution and below
    (a quarter of the cost, with a wider view)."""

    def __init__(self, config: SMLMNetConfig | None = None) -> None:
        super().__init__()
        self.config = config or SMLMNetConfig()
        c, f, w, d = (self.config.context, self.config.full, self.config.width,
                      self.config.depth)  # fmt: skip
        widths = [f] + [w * min(2**i, 2) for i in range(d)]
        self.inc = nn.Sequential(nn.Conv2d(c, f, 3, padding=1), nn.ELU())
        self.downs = nn.ModuleList(_down(widths[i], widths[i + 1]) for i in range(d))
        self.ups = nn.ModuleList(
            nn.ConvTranspose2d(widths[i + 1], widths[i], 2, stride=2) for i in range(d)
        )
        self.merges = nn.ModuleList(
            _block(2 * widths[i], widths[i]) for i in range(1, d)
        )  # the full-resolution merge is the head
        self.head = nn.Sequential(
            nn.Conv2d(2 * f, 2 * f, 3, padding=1), nn.ELU(), nn.Conv2d(2 * f, 8, 1)
        )

    def forward(self, frames: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(maps, prob_logit)``: maps ``(B, 8, H, W)`` as in :data:`CHANNELS`."""
        h, w = frames.shape[-2:]
        m = 2**self.config.depth
        pad = (0, (-w) % m, 0, (-h) % m)
        x = F.pad(frames, pad, mode="replicate") if any(pad) else frames
        skips = [self.inc(x)]
        for down in self.downs:
            skips.append(down(skips[-1]))
        y = skips.pop()
        for i in reversed(range(1, len(self.ups))):
            y = self.merges[i - 1](torch.cat([self.ups[i](y), skips.pop()], dim=1))
        raw = self.head(torch.cat([self.ups[0](y), skips.pop()], dim=1))[..., :h, :w]
        logit = raw[:, 0:1]
        maps = torch.cat(
            [
                torch.sigmoid(logit),
                torch.tanh(raw[:, 1:3]),
                F.softplus(raw[:, 3:4]),
                F.softplus(raw[:, 4:7]) + MIN_SIGMA,
                F.softplus(raw[:, 7:8]),
            ],
            dim=1,
        )
        return maps, logit
