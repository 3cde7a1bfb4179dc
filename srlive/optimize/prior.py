"""The optimizer's prior, learned on the simulator across many samples (see
:mod:`srlive.optimize.prior_fit` for ``srlive optimizer-prior``, which makes it).

It holds what is true of SIM imaging in general rather than of one sample:

* a **quality curve** per modality: the expected SR SSIM (against the ground truth blurred to
  the SIM limit) as a function of the per-frame peak SNR that :mod:`srlive.recon.set_metrics`
  measures from raw frames. The optimizer turns measured SNR into a quality it can aim at
  without ever seeing a ground truth;
* the **spread** of the true SSIM around that curve across structures and seeds (the prior
  variance of the optimizer's Gaussian process) and the measurement noise of the quality proxy
  (its noise variance);
* a typical **bleaching rate** (used until a sample's own intensity history is long enough).

The shipped prior is ``srlive/optimize/prior.json`` with a card ``prior.md`` saying how it
was made; :mod:`srlive.optimize.prior_fit` makes it on the simulator (training code).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

PRIOR_PATH = Path(__file__).resolve().parent / "prior.json"


@dataclass(frozen=True)
class QualityCurve:
    """Expected SSIM = lo + (hi − lo) / (1 + exp(−(log10 SNR − centre) / width))."""

    lo: float
    hi: float
    centre: float
    width: float

    def __call__(self, snr: float | np.ndarray) -> float | np.ndarray:
        x = np.log10(np.maximum(np.asarray(snr, np.float64), 1e-3))
        value = self.lo + (self.hi - self.lo) / (1.0 + np.exp(-(x - self.centre) / self.width))
        return float(value) if np.ndim(value) == 0 else value


@dataclass(frozen=True)
class Prior:
    """Everything the optimizer knows before it has seen the sample."""

    curves: dict[str, QualityCurve]
    prior_sd: float = 0.05  # spread of true quality around the curve (GP output scale)
    noise_sd: float = 0.02  # measurement noise of the quality proxy (GP noise)
    lengthscale_decades: float = 0.35  # GP lengthscale along log10 expected signal
    bleach_k_per_mj: float = 0.0035  # typical bleaching rate (k in exp(−k·dose))
    info: dict[str, Any] = field(default_factory=dict)

    def curve(self, modality: str) -> QualityCurve:
        try:
            return self.curves[modality]
        except KeyError:
            raise ValueError(f"the optimizer prior has no quality curve for {modality!r}") from None

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["curves"] = {k: asdict(v) for k, v in self.curves.items()}
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Prior:
        curves = {k: QualityCurve(**v) for k, v in data["curves"].items()}
        return cls(**{**data, "curves": curves})


def load_prior(path: str | Path | None = None) -> Prior:
    """The shipped prior (or one made by ``srlive optimizer-prior --out PATH``)."""
    path = Path(path) if path else PRIOR_PATH
    if not path.exists():
        raise FileNotFoundError(
            f"optimizer prior not found: {path} (make one with `srlive optimizer-prior`)"
        )
    return Prior.from_json(json.loads(path.read_text()))
