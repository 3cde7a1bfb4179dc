"""dl-smlm (issue 18, item 3): the learned localiser uses the measured signal, its predicted
uncertainty is calibrated on held-out prior-free data, and its training resumes."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest
import torch

from srlive.learn.smlm_data import SMLMDataRanges, make_batch
from srlive.learn.smlm_eval import (
    DENSITIES,
    burst_camera,
    calibration,
    heldout_burst,
    signal_checks,
)
from srlive.learn.smlm_train import (
    SMLMTrainSettings,
    checkpoint_path,
    mixture_loss,
    train_smlm,
)
from srlive.recon.smlm import SMLMOptics, score
from srlive.recon.smlm.confidence import smlm_confidence
from srlive.recon.smlm.learned import (
    LearnedLocalizeSettings,
    detections,
    load_smlm_weights,
    localize_learned,
    smlm_model,
)
from srlive.recon.smlm.net import SMLMNet, SMLMNetConfig

SETTINGS = LearnedLocalizeSettings()


def _maps(h: int, w: int, cells: list[tuple[int, int, float, float, float]]) -> torch.Tensor:
    """Maps with emitters at (row, col, p, dx, dy); sigmas 0.1 px, photons 1, background 0."""
    maps = torch.zeros(1, 8, h, w)
    maps[:, 4:7] = 0.1
    for r, c, p, dx, dy in cells:
        maps[0, 0, r, c], maps[0, 1, r, c], maps[0, 2, r, c], maps[0, 3, r, c] = p, dx, dy, 1.0
    return maps


def test_a_single_frame_and_the_ends_of_a_stack_get_fresh_neighbours():
    from srlive.recon.smlm.learned import _windows

    stack = np.arange(4, dtype=np.float32)[:, None, None] * np.ones((1, 2, 2), np.float32)
    windows = _windows(stack, 3)[:, :, 0, 0]
    assert windows.tolist() == [[1, 0, 1], [0, 1, 2], [1, 2, 3], [2, 3, 2]]
    single = _windows(np.array([[[5.0, 1.0], [1.0, 1.0]]], np.float32), 3)
    assert single.shape == (1, 3, 2, 2) and single[0, 1, 0, 0] == 5
    assert (single[0, [0, 2]] == 1).all()  # the neighbours: background (the median)


def test_the_loss_prefers_emitters_where_they_are():
    truth = {
        "x": torch.tensor([[5.8]]),
        "y": torch.tensor([[3.2]]),
        "n": torch.tensor([[1.0]]),
        "mask": torch.tensor([[True]]),
        "bg": torch.zeros(1, 8, 8),
    }

    def total(row: int, col: int, dx: float, dy: float) -> float:
        maps = _maps(8, 8, [(row, col, 0.99, dx, dy)])
        maps[:, 0] = maps[:, 0].clamp(1e-4, 1 - 1e-4)
        logit = torch.logit(maps[:, 0:1])
        return float(sum(mixture_loss(maps, logit, truth).values()))

    right = total(3, 5, 0.3, -0.3)  # pixel (3, 5): centre (3.5, 5.5)
    assert right < total(3, 5, -0.3, 0.3) < total(6, 1, 0.3, -0.3)


def test_detections_find_separate_and_adjacent_emitters():
    maps = _maps(16, 16, [(4, 4, 0.9, 0.1, 0.0), (4, 5, 0.05, 0, 0), (10, 10, 0.3, 0, 0),
                          (10, 11, 0.28, 0, 0), (12, 3, 0.2, 0, 0)])  # fmt: skip
    index, score_ = detections(maps, threshold=0.5, high_threshold=0.6)
    found = {tuple(i[1:].tolist()) for i in index}
    assert (4, 4) in found and (4, 5) not in found  # a sure one, its halo not twice
    assert len(found & {(10, 10), (10, 11)}) == 1  # spread over two pixels: one
    assert (12, 3) not in found  # too unlikely
    assert float(score_.max()) <= 1


def test_training_data_is_in_photoelectrons_with_truth_inside_the_crop():
    ranges = SMLMDataRanges()
    batch = make_batch(np.random.default_rng(3), 6, 24, 3, ranges, 10_000_000)
    assert batch.frames.shape == (6, 3, 24, 24)
    xs, ys = batch.x_px[batch.mask], batch.y_px[batch.mask]
    assert ((xs >= 0) & (xs < 24) & (ys >= 0) & (ys < 24)).all()
    assert (batch.photons_e[batch.mask] > 0).all()
    # sparse frames: their median sits at the background (photoelectrons, offset removed)
    sparse = replace(ranges, density_per_um2=(0.05, 0.1))
    batch = make_batch(np.random.default_rng(4), 6, 24, 3, sparse, 10_000_000)
    ratio = np.median(batch.frames[:, 1], axis=(1, 2)) / np.median(batch.background_e, axis=(1, 2))
    assert np.all((ratio > 0.8) & (ratio < 1.25))


def test_training_checkpoints_resume_and_refuse_other_settings(tmp_path):
    out = tmp_path / "m.safetensors"
    settings = SMLMTrainSettings(
        steps=4, batch=2, patch=16, checkpoint_every=2, net=SMLMNetConfig(full=4, width=8)
    )
    first = train_smlm(out, replace(settings, steps=2), resume=True, log=lambda m: None)
    assert first["train"]["steps"] == 2 and checkpoint_path(out).exists()
    with pytest.raises(ValueError, match="other settings"):
        train_smlm(out, settings, resume=True, log=lambda m: None)
    messages: list[str] = []
    info = train_smlm(out, settings, resume=False, log=messages.append)
    assert [row[0] for row in info["train"]["losses"]] == [2, 4]
    assert all(np.isfinite(row[1:]).all() for row in info["train"]["losses"])
    model = load_smlm_weights(out)
    assert model.net.config == settings.net and model.info["settings"]["patch"] == 16
    again = train_smlm(out, settings, resume=True, log=messages.append)
    assert again["train"]["losses"] == info["train"]["losses"]  # nothing left to do
    # fine-tuning starts from those weights and keeps the record of the run before
    tuned = train_smlm(tmp_path / "t.safetensors", replace(settings, steps=2), init_from=out,
                       log=messages.append)  # fmt: skip
    assert tuned["init_from"] == str(out) and tuned["runs"][0]["train"]["steps"] == 4
    with pytest.raises(ValueError, match="another architecture"):
        train_smlm(tmp_path / "u.safetensors", SMLMTrainSettings(steps=1), init_from=out)


def test_a_weights_file_of_another_task_is_refused(tmp_path):
    from safetensors.torch import save_file

    bad = tmp_path / "other.safetensors"
    save_file({"w": torch.zeros(2)}, str(bad), metadata={"task": "dl-sim3", "config": "{}"})
    with pytest.raises(ValueError, match="not a valid dl-smlm weights file"):
        load_smlm_weights(bad)
    with pytest.raises(FileNotFoundError):
        smlm_model(tmp_path / "missing.safetensors")


def test_an_untrained_net_keeps_the_frame_size():
    with torch.no_grad():
        maps, logit = SMLMNet()(torch.zeros(2, 3, 21, 30))
    assert maps.shape == (2, 8, 21, 30) and logit.shape == (2, 1, 21, 30)
    assert float(maps[:, 0].max()) < 1 and float(maps[:, 4:7].min()) > 0


# --- the shipped model -----------------------------------------------------------------
def test_it_localises_only_what_the_frames_show():
    checks = signal_checks(SETTINGS)
    removed = checks["removed"]
    assert removed["localizations_with_dyes"] > 0.5 * removed["true_emitters"]
    assert removed["localizations_dyes_removed"] <= 0.01 * removed["localizations_with_dyes"]
    shift = checks["shift"]
    assert shift["frames_with_one_localization"] == len(shift["steps_nm"])
    assert abs(shift["slope"] - 1) < 0.1 and shift["max_abs_error_nm"] < 25
    # before and after it: background only, (almost) never a localisation
    assert shift["localizations_without_the_emitter"] <= 0.1 * shift["frames_without_the_emitter"]


def test_held_out_scores_and_calibrated_uncertainty():
    burst = heldout_burst(48, 80, DENSITIES["low"], 103)
    locs = localize_learned(burst.frames, SMLMOptics(), burst_camera(burst), SETTINGS)
    result = score(locs.columns, burst.truth)
    assert result.jaccard > 0.5 and result.rmse_lateral_nm < 25
    assert abs(result.bias_x_nm) < 5 and abs(result.bias_y_nm) < 5
    cal = calibration(locs.columns, burst.truth)
    assert 0.7 < cal["rms_normalised_error"] < 1.5
    assert 0.55 < cal["within_1_sigma"] < 0.85
    sigmas = [b["rms_predicted_nm"] for b in cal["by_predicted_sigma"] if b["n"] >= 20]
    errors = [b["rmse_per_axis_nm"] for b in cal["by_predicted_sigma"] if b["n"] >= 20]
    assert np.corrcoef(sigmas, errors)[0, 1] > 0.8  # larger predicted sigma, larger error


def test_confidence_flags_an_acquisition_outside_the_training_ranges():
    burst = heldout_burst(32, 20, DENSITIES["low"], 104)
    locs = localize_learned(burst.frames, SMLMOptics(), burst_camera(burst), SETTINGS)
    info = smlm_model(SETTINGS.weights).info
    good = smlm_confidence(locs, SMLMOptics(), info)
    assert good["trusted"] and good["outside_training"] == []
    coarse = smlm_confidence(locs, SMLMOptics(pixel_nm=250), info)  # PSF of 0.4 pixel
    assert not coarse["trusted"] and "psf_sigma_px" in coarse["outside_training"]
    json.dumps(good, allow_nan=False)


def test_reconstruct_localises_a_tiff_stack_with_the_learned_method(tmp_path, capsys):
    import tifffile

    from srlive.cli import main

    burst = heldout_burst(32, 40, DENSITIES["low"], 105)
    stack = tmp_path / "burst.tif"
    tifffile.imwrite(stack, burst.frames)
    out = tmp_path / "locs.csv"
    argv = ["reconstruct", str(stack), "--method", "dl-smlm", "--out", str(out), "--json"]
    assert main([*argv, "--no-progress", "--gain-e-per-adu", "0.46"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["method"] == "dl-smlm" and summary["parameters"]["learned"]["weights"]
    assert summary["confidence"]["trusted"] and summary["localizations"] > 20
    header = out.read_text().splitlines()[0]
    assert header.startswith('"id","frame","x [nm]"')  # ThunderSTORM's columns, as classical
    # the fit's own options are refused, in one line
    assert main([*argv, "--box", "9", "--overwrite", "--no-progress"]) == 2
    err = capsys.readouterr().err.strip()
    assert "--box: only for --method localization" in err and "\n" not in err
