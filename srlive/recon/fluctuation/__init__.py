"""Classical fluctuation super-resolution (eSRRF, SOFI) as pure numpy/scipy functions."""

from srlive.recon.fluctuation.esrrf import correct_macro_pixels, esrrf, esrrf_sensitivities
from srlive.recon.fluctuation.sofi import sofi
from srlive.recon.fluctuation.sweep import SweepResult, SweepRow, sweep_esrrf

__all__ = [
    "SweepResult",
    "SweepRow",
    "correct_macro_pixels",
    "esrrf",
    "esrrf_sensitivities",
    "sofi",
    "sweep_esrrf",
]
