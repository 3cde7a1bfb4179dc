"""`srlive reconstruct` with the fluctuation methods (issue 17 item 5): eSRRF/SOFI of the
rolling windows of a TIFF burst and of a stored burst acquisition, the API, bad input."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import tifffile

import srlive
from simulators.fluctuation import line_pair_emitters, simulate_burst
from srlive.cli import main
from srlive.recon.fluctuation.method import fluctuation_settings
from srlive.storage import AcquisitionStore, open_store
from srlive.storage.noise import NoiseRecord

N = 32  # camera pixels (65 nm)
FRAMES = 40
OFFSET = 100.0  # the simulated camera's offset (ADU), as the default profile says
QUIET = ["--no-progress"]


@pytest.fixture(scope="module")
def burst() -> np.ndarray:
    """40 frames (uint16, 32 x 32) of one blinking line along x through the field centre."""
    emitters = line_pair_emitters(0.0, 1500.0, field_nm=N * 65.0)
    return simulate_burst(emitters, FRAMES, rng=np.random.default_rng(1)).frames


@pytest.fixture(scope="module")
def inputs(burst, tmp_path_factory) -> dict[str, Path]:
    """The burst as a plain TIFF and as a store of two 20-frame sets (as `srlive run
    --modality fluctuation` writes: layout 1 x 20, its live window recorded)."""
    root = tmp_path_factory.mktemp("bursts")
    tifffile.imwrite(root / "burst.tif", burst)
    one = root / "one.tif"
    tifffile.imwrite(one, burst[:1])
    store = AcquisitionStore.create(
        root / "bursts.zarr",
        frame_shape=(N, N),
        pixel_nm=65.0,
        n_angles=1,
        n_phases=20,
        sr_shape=None,
        sr_pixel_nm=None,
        laser_lines=[488],
        profile={},
        run={"modality": "fluctuation", "fluctuation": {"window": 100, "step": 20}},
        camera=NoiseRecord(OFFSET, source="camera"),  # the camera's noise model, recorded
    )
    with store:
        for t in range(2):
            rows = [{"time_s": 0.01 * (20 * t + i)} for i in range(20)]
            store.write_set(t, burst[20 * t : 20 * t + 20].reshape(1, 20, N, N), rows)
    return {"tif": root / "burst.tif", "store": root / "bursts.zarr", "one": one}


def _run(capsys, *argv: str) -> tuple[int, dict | None, str]:
    code = main(["reconstruct", *argv, *QUIET])
    captured = capsys.readouterr()
    summary = json.loads(captured.out) if code == 0 and "--json" in argv else None
    return code, summary, captured.err


def _fwhm(profile: np.ndarray, spacing: float) -> float:
    """Full width at half maximum (above the profile's minimum), linearly interpolated."""
    p = profile - profile.min()
    half = p.max() / 2
    above = np.nonzero(p >= half)[0]
    lo, hi = above[0], above[-1]
    left = lo - (p[lo] - half) / (p[lo] - p[lo - 1])
    right = hi + (p[hi] - half) / (p[hi] - p[hi + 1])
    return float((right - left) * spacing)


def test_tiff_burst_into_a_store(inputs, burst, tmp_path, capsys) -> None:
    out = tmp_path / "sr.zarr"
    argv = [str(inputs["tif"]), "--method", "esrrf", "--window", "20", "--step", "10"]
    code, summary, err = _run(capsys, *argv, "--offset-adu", "100", "--out", str(out), "--json")
    assert code == 0, err
    settings = fluctuation_settings("esrrf", window=20, step=10)
    assert summary["parameters"] == settings.parameters() and summary["n_sets"] == 4
    assert summary["sr_images"] == 3 and summary["skipped_sets"] == 1
    assert [w["first_frame"] for w in summary["windows"]] == [0, 10, 20]
    assert all(w["frames"] == 20 and w["recon_ms"] > 0 for w in summary["windows"])
    store = open_store(out)
    assert store.attrs["run"]["fluctuation"] == settings.parameters()
    assert store.attrs["run"]["modality"] == "fluctuation"  # the output is a burst store
    assert store.raw.shape == (4, 10, N, N) and store.sr.shape == (4, 4 * N, 4 * N)
    assert store.sr_pixel_nm == pytest.approx(65.0 / 4)
    np.testing.assert_array_equal(store.read_sets().reshape(FRAMES, N, N), burst)
    assert store.sr_status() == {
        0: "skipped",
        1: "reconstructed",
        2: "reconstructed",
        3: "reconstructed",
    }
    assert np.isnan(store.read_sr(0)).all()
    np.testing.assert_array_equal(store.sr_table["window_first_frame"][1:], [0, 10, 20])
    np.testing.assert_array_equal(store.sr_table["window_frames"][1:], [20, 20, 20])
    for t in (1, 2, 3):
        first = (t - 1) * 10
        expected = settings.reconstruct(burst[first : first + 20], OFFSET)
        np.testing.assert_array_equal(store.read_sr(t), expected)
    # the API cuts the same windows
    api = srlive.reconstruct(burst, "esrrf", window=20, step=10, offset_adu=OFFSET)
    np.testing.assert_array_equal(api, store.sr[1:])


def test_stored_bursts_to_tiff_sharper_than_widefield(inputs, burst, tmp_path, capsys) -> None:
    out = tmp_path / "sr.ome.tif"
    code, summary, err = _run(
        capsys, str(inputs["store"]), "--method", "esrrf", "--out", str(out), "--json"
    )
    assert code == 0, err
    params = summary["parameters"]
    assert (params["window"], params["step"]) == (20, 20)  # one SR image per stored burst
    assert summary["offset_adu_from"] == "store" and summary["offset_adu"] == OFFSET
    assert any("--window 100" in line for line in summary["warnings"])  # the live window
    sidecar = json.loads(out.with_name("sr.ome.srlive.json").read_text())
    assert sidecar["parameters"] == params and sidecar["sr_images"] == 2
    images = tifffile.imread(out)
    assert images.shape == (2, 4 * N, 4 * N)
    settings = fluctuation_settings("esrrf", window=20, step=20)
    for t in (0, 1):
        expected = settings.reconstruct(burst[20 * t : 20 * t + 20], OFFSET)
        np.testing.assert_array_equal(images[t], expected)
    # the line runs along x: its profile across it, away from the line's ends
    cols = slice(N // 2 - 6, N // 2 + 6)
    wide = (burst.mean(axis=0) - OFFSET)[:, cols].mean(axis=1)
    sharp = images.mean(axis=0)[:, 4 * cols.start : 4 * cols.stop].mean(axis=1)
    fwhm_wide, fwhm_sharp = _fwhm(wide, 65.0), _fwhm(sharp, 65.0 / 4)
    assert fwhm_sharp < 0.75 * fwhm_wide, (fwhm_sharp, fwhm_wide)


def test_sofi_window_over_stored_sets(inputs, burst, tmp_path, capsys) -> None:
    out = tmp_path / "sofi.zarr"
    argv = [str(inputs["store"]), "--method", "sofi2", "--window", "40", "--balanced"]
    code, summary, err = _run(capsys, *argv, "--out", str(out), "--json")
    assert code == 0, err
    assert summary["parameters"] == {
        "method": "sofi2",
        "window": 40,
        "step": 20,
        "order": 2,
        "balanced": True,
    }
    assert summary["warnings"] == []  # a window was given: no hint at the live one
    store = open_store(out)
    assert store.sr_status() == {0: "skipped", 1: "reconstructed"} and store.sr.shape == (2, N, N)
    expected = fluctuation_settings("sofi2", window=40, step=20, balanced=True).reconstruct(
        burst, OFFSET
    )
    np.testing.assert_array_equal(store.read_sr(1), expected)
    assert srlive.reconstruct(burst, "sofi2", balanced=True).shape == (N, N)  # all frames


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["{sim}", "--method", "esrrf"], "store of SIM sets"),
        (["{one}", "--method", "esrrf"], "holds 1 frame(s)"),
        (["{tif}", "--method", "esrrf", "--window", "30", "--step", "20"], "multiple of the step"),
        (["{tif}", "--method", "sofi3", "--window", "60"], "longer than"),
        (["{store}", "--method", "esrrf", "--window", "60"], "longer than"),
        (["{store}", "--method", "wiener-sim"], "holds fluctuation bursts"),
        (["{tif}", "--method", "esrrf", "--na", "1.4"], "--na: SIM options"),
        (["{tif}", "--method", "sofi2", "--radius", "2"], "--radius: eSRRF options"),
        (["{tif}", "--method", "wiener-sim", "--window", "20"], "--window: only for the"),
        (["{tif}", "--method", "esrrf", "--workers", "2"], "not supported yet"),
        (["{tif}", "--method", "esrrf", "--magnification", "0"], "magnification"),
    ],
)
def test_bad_input_one_line_no_output(
    argv, message, inputs, make_sim9_store, tmp_path, capsys
) -> None:
    paths = {**inputs}
    if "{sim}" in argv:
        paths["sim"] = make_sim9_store(tmp_path / "sim.zarr", 1, 32)
    for suffix in (".zarr", ".tif"):
        out = tmp_path / f"out{suffix}"
        args = [a.format(**paths) for a in argv]
        code, _summary, err = _run(capsys, *args, "--out", str(out))
        assert code == 2 and message in err, err
        assert err.count("\n") == 1 and err.startswith("srlive: error:")
        assert not out.exists() and not out.with_name("out.srlive.json").exists()


def test_offline_windows_match_a_live_run(scope, tmp_path, capsys) -> None:
    """The live pipeline and `srlive reconstruct` cut the same windows of a stored run."""
    from srlive.pipeline.session import LiveSession, LiveSettings

    settings = fluctuation_settings("esrrf", window=8, step=4, magnification=2)
    scope.core.setProperty("SimHub", "FrameSize", 32)
    scope.core.setProperty("SimHub", "Fluctuation", "On")
    live = LiveSettings("fluctuation", 488, 2.0, {488: 20.0})
    session = LiveSession(
        scope,
        live,
        tmp_path / "live.zarr",
        fluctuation=settings,
        reconstructions={"fluctuation": "esrrf"},
        inference="thread",
        threads=1,
    )
    try:
        session.start(4)
        assert session.wait(60)
    finally:
        session.close()
    out = tmp_path / "offline.zarr"
    argv = [str(tmp_path / "live.zarr"), "--method", "esrrf", "--magnification", "2"]
    code, summary, err = _run(capsys, *argv, "--window", "8", "--out", str(out), "--json")
    assert code == 0, err
    assert summary["parameters"] == settings.parameters() and summary["sr_images"] == 3
    stored, offline = open_store(tmp_path / "live.zarr"), open_store(out)
    assert offline.sr_status() == {
        0: "skipped",
        1: "reconstructed",
        2: "reconstructed",
        3: "reconstructed",
    }
    live_done = [t for t, s in stored.sr_status().items() if s == "reconstructed"]
    assert live_done and 3 in live_done  # the last window is always drained
    for t in live_done:
        np.testing.assert_array_equal(offline.read_sr(t), stored.read_sr(t))
