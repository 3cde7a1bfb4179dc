"""Single-molecule localisation microscopy (SMLM): pure functions from frames to tables.

The public API::

    locs = localize(frames, SMLMOptics(pixel_nm=65, na=1.49, emission_nm=670),
                    SMLMCamera(offset_adu=100, e_per_adu=0.46, read_noise_e=1.6))
    drift = estimate_drift(locs, segments=10); locs = correct_drift(locs, drift)
    image = render(locs, pixel_nm=10)
    score(locs.columns, truth)          # Jaccard, RMSE against ground truth
    write_export("locs.csv", locs)      # ThunderSTORM CSV, or .hdf5 for Picasso

Modules: :mod:`~.detect` (DoG candidates), :mod:`~.gauss` (PSF model), :mod:`~.fit`
(batched MLE with Cramér-Rao bounds), :mod:`~.localize`, :mod:`~.calibrate` (astigmatic
3D), :mod:`~.drift` (RCC), :mod:`~.render`, :mod:`~.match` (scoring), :mod:`~.export`,
:mod:`~.table` (the localisation table), :mod:`~.method` (the reconstruction's settings).
"""

from srlive.recon.smlm.calibrate import calibrate_astigmatism
from srlive.recon.smlm.drift import Drift, correct_drift, estimate_drift
from srlive.recon.smlm.export import write_export, write_picasso_hdf5, write_thunderstorm_csv
from srlive.recon.smlm.gauss import AstigmaticCalibration, AxisWidth
from srlive.recon.smlm.localize import (
    LocalizeSettings,
    SMLMCamera,
    SMLMOptics,
    localize,
    localize_settings,
)
from srlive.recon.smlm.match import MATCH_RADIUS_NM, MatchScore, match_pairs, score
from srlive.recon.smlm.method import SMLMSettings, smlm_settings
from srlive.recon.smlm.render import render
from srlive.recon.smlm.table import LOCALIZATION_COLUMNS, Localizations, concat

__all__ = [
    "LOCALIZATION_COLUMNS",
    "MATCH_RADIUS_NM",
    "AstigmaticCalibration",
    "AxisWidth",
    "Drift",
    "Localizations",
    "LocalizeSettings",
    "MatchScore",
    "SMLMCamera",
    "SMLMOptics",
    "SMLMSettings",
    "calibrate_astigmatism",
    "concat",
    "correct_drift",
    "estimate_drift",
    "localize",
    "localize_settings",
    "match_pairs",
    "render",
    "score",
    "smlm_settings",
    "write_export",
    "write_picasso_hdf5",
    "write_thunderstorm_csv",
]
