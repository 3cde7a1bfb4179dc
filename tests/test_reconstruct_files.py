"""`srlive reconstruct INPUT` on raw files (issue 14 item 5): real TIRF-SIM data, frame order,
OME-TIFF output, the pattern figure, bad input in one line, and stores as before."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import tifffile

from simulators.imaging import default_sim_patterns, simulate_sim_stack
from simulators.samples import make_sample
from srlive.cli import main
from srlive.io.raw_files import read_raw_frames
from srlive.recon.sim_params import pattern_columns
from srlive.storage import AcquisitionStore, open_store

ER_1 = Path(__file__).resolve().parents[1].parent / "shared/data/real-sim/tsim-er/ER_1.tif"
N = 128  # simulated camera frames N x N at 65 nm
QUIET = ["--no-progress"]


def _angle_diff(a: float, b: float) -> float:
    return abs((a - b + 90) % 180 - 90)


def _phase_major(frames: np.ndarray) -> np.ndarray:
    """Angle-major 3x3 sets reordered phase-major (p0a0, p0a1, p0a2, p1a0, ...)."""
    sets = frames.reshape(-1, 3, 3, *frames.shape[-2:])
    return sets.transpose(0, 2, 1, 3, 4).reshape(frames.shape)


def _write_tiff(path: Path, frames: np.ndarray, pixel_nm: float | None = None) -> Path:
    meta = {"axes": "QYX"}
    if pixel_nm is not None:
        meta |= {"PhysicalSizeX": pixel_nm / 1000, "PhysicalSizeY": pixel_nm / 1000}
        meta |= {"PhysicalSizeXUnit": "µm", "PhysicalSizeYUnit": "µm"}
    tifffile.imwrite(path, frames, ome=True, metadata=meta)
    return path


@pytest.fixture(scope="module")
def sim_frames() -> np.ndarray:
    """Two simulated sim9 sets (angle-major, 18 x 128 x 128 uint16) of the default pattern."""
    density = make_sample("microtubules", (2 * N, 2 * N), 32.5, seed=3, motion=False).density()
    patterns = default_sim_patterns(fov_nm=(N * 65.0, N * 65.0))
    sets = [simulate_sim_stack(density, patterns, rng=np.random.default_rng(s)) for s in (1, 2)]
    return np.concatenate(sets)


@pytest.fixture(scope="module")
def files(sim_frames, tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("raw")
    return {
        "angle": _write_tiff(root / "angle.ome.tif", sim_frames),
        "phase": _write_tiff(root / "phase.ome.tif", _phase_major(sim_frames), pixel_nm=65.0),
    }


def _run(capsys, *argv: str) -> tuple[int, dict | None, str]:
    """main(argv); its exit code, the JSON summary (with --json) and stderr."""
    code = main(["reconstruct", *argv])
    captured = capsys.readouterr()
    summary = json.loads(captured.out) if code == 0 and "--json" in argv else None
    return code, summary, captured.err


OPTICS = ["--pixel-nm", "65", "--na", "1.49", "--emission-nm", "510"]


@pytest.mark.skipif(not ER_1.exists(), reason="real SIM data (../shared) not present")
def test_real_tirf_sim_file_into_a_store(tmp_path, capsys) -> None:
    out = tmp_path / "x.zarr"
    argv = [str(ER_1), "--method", "wiener-sim", *OPTICS, "--offset-adu", "60", "--json"]
    code, summary, err = _run(capsys, *argv, "--out", str(out), *QUIET)
    assert code == 0, err
    assert summary["n_sets"] == summary["sr_images"] == 3 and summary["format"] == "imagej-tiff"
    periods = np.array([2.692, 2.702, 2.684]) * 65.0
    angles = (2.4, 122.4, 62.4)
    for entry in summary["sets"]:
        for a, angle in enumerate(entry["pattern"]):
            assert angle["found"] and angle["source"] == "estimated", (entry["t"], angle)
            assert angle["period_nm"] == pytest.approx(periods[a], rel=0.005), (entry["t"], a)
            assert _angle_diff(angle["angle_deg"], angles[a]) < 0.5, (entry["t"], a)
        assert entry["wiener"] > 0 and "confidence" not in entry
    assert summary["warnings"] == []  # every optic given, every angle found
    reader = open_store(out)
    assert reader.n_sets == 3 and reader.pixel_nm == 65.0
    assert [reader.read_sr(t).shape for t in range(3)] == [(224, 1024)] * 3
    assert set(pattern_columns(3, 3)) <= set(reader.sr_table)
    stored = reader.sr_table["pattern_a1_period_nm"]
    np.testing.assert_allclose(stored, [s["pattern"][1]["period_nm"] for s in summary["sets"]])
    assert reader.attrs["run"]["optics"]["offset_adu"] == 60.0
    np.testing.assert_array_equal(
        reader.read_set(2).reshape(9, 112, 512), read_raw_frames(ER_1).frames[18:]
    )


def test_phase_major_file_gives_the_angle_major_pattern(files, tmp_path, capsys) -> None:
    def pattern(path: Path, *extra: str) -> tuple[dict, np.ndarray]:
        out = tmp_path / f"{path.stem}{len(extra)}.tif"
        argv = [str(path), "--method", "wiener-sim", "--na", "1.49", "--emission-nm", "510"]
        code, summary, err = _run(capsys, *argv, "--out", str(out), "--json", *QUIET, *extra)
        assert code == 0, err
        return summary, tifffile.imread(out)

    reference, ref_sr = pattern(files["angle"], "--pixel-nm", "65")
    reordered, sr = pattern(files["phase"], "--order", "phase-major")
    assert reordered["pixel_nm_from"] == "file metadata"  # the OME pixel size, no flag
    assert reordered["optics"]["pixel_nm"] == pytest.approx(65.0)
    # optics neither given nor in the file are the default profile's, and said so
    assert len(reordered["warnings"]) == 1 and "offset_adu 100" in reordered["warnings"][0]
    assert [s["pattern"] for s in reordered["sets"]] == [s["pattern"] for s in reference["sets"]]
    np.testing.assert_allclose(sr, ref_sr, rtol=1e-5, atol=1e-3)
    for a, angle in enumerate(reference["sets"][1]["pattern"]):
        assert angle["found"] and angle["period_nm"] == pytest.approx(195.0, rel=0.003)
        assert _angle_diff(angle["angle_deg"], 60.0 * a) < 0.2
    wrong, _ = pattern(files["phase"])  # the same file read angle-major: another pattern
    assert [s["pattern"] for s in wrong["sets"]] != [s["pattern"] for s in reference["sets"]]


def test_optics_file_then_flags(files, tmp_path, capsys) -> None:
    """An optics file describes the microscope; flags override it; a store keeps file order."""
    optics = tmp_path / "scope.yaml"
    optics.write_text(
        "pixel_nm: 65\nna: 1.49\nemission_nm: 510\norder: phase-major\noffset_adu: 90\n"
    )
    out = tmp_path / "o.zarr"
    argv = [str(files["phase"]), "--method", "wiener-sim", "--optics", str(optics)]
    code, summary, err = _run(capsys, *argv, "--offset-adu", "100", "--out", str(out), "--json")
    assert code == 0, err
    assert summary["optics"]["order"] == "phase-major" and summary["optics"]["offset_adu"] == 100
    assert summary["pixel_nm_from"] == "optics file" and summary["warnings"] == []
    assert all(a["found"] for s in summary["sets"] for a in s["pattern"])
    reader = open_store(out)  # sets stored angle-major, each frame naming its place in the file
    assert reader.frames["frame"][:9].tolist() == [0, 3, 6, 1, 4, 7, 2, 5, 8]
    assert reader.attrs["run"]["optics"]["order"] == "phase-major"


def test_tiff_output_is_an_ome_tiff_with_its_summary(files, tmp_path, capsys) -> None:
    out = tmp_path / "sr.tif"
    argv = [str(files["angle"]), "--method", "wiener-sim", *OPTICS, "--offset-adu", "100"]
    argv += ["--out", str(out)]
    code, _, err = _run(capsys, *argv)  # progress on, but stderr is no terminal: no bar
    assert code == 0, err
    assert err == ""
    with tifffile.TiffFile(out) as tif:
        assert tif.is_ome and tif.series[0].axes == "TYX"
        assert tif.series[0].shape == (2, 2 * N, 2 * N) and tif.series[0].dtype == np.float32
    assert read_raw_frames(out).pixel_nm == pytest.approx(32.5)
    sidecar = json.loads((tmp_path / "sr.srlive.json").read_text())
    assert sidecar["output"] == str(out) and len(sidecar["sets"]) == 2
    assert not list(tmp_path.glob(".*.part"))  # written through a temporary file
    assert main(["reconstruct", *argv, *QUIET]) == 2  # exists: only with --overwrite
    assert "exists" in capsys.readouterr().err
    assert main(["reconstruct", *argv, *QUIET, "--overwrite"]) == 0


def test_plot_writes_a_png(files, tmp_path, capsys) -> None:
    png = tmp_path / "pattern.png"
    argv = [str(files["angle"]), "--method", "wiener-sim", *OPTICS, "--plot", str(png)]
    code, summary, err = _run(capsys, *argv, "--out", str(tmp_path / "o.zarr"), "--json", *QUIET)
    assert code == 0, err
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 10_000
    assert summary["plot"] == str(png)


def test_an_angle_without_fringes_is_reported(sim_frames, tmp_path, capsys) -> None:
    density = make_sample("microtubules", (2 * N, 2 * N), 32.5, seed=3, motion=False).density()
    flat = default_sim_patterns(modulation=0.0, fov_nm=(N * 65.0, N * 65.0))[6:9]
    frames = sim_frames.copy()
    for t in range(2):  # angle 2 of both sets: the same light without a fringe
        frames[9 * t + 6 : 9 * t + 9] = simulate_sim_stack(
            density, flat, rng=np.random.default_rng(9 + t)
        )
    path = _write_tiff(tmp_path / "flat2.tif", frames)
    argv = [str(path), "--method", "wiener-sim", *OPTICS, "--out", str(tmp_path / "o.zarr")]
    code, _, err = _run(capsys, *argv, *QUIET)
    assert code == 0, err
    assert "srlive: warning: angle 2 not found in sets 0, 1 (widefield only)" in err
    assert "angle 0" not in err and "angle 1" not in err
    found = open_store(tmp_path / "o.zarr").sr_table["pattern_a2_found"]
    np.testing.assert_array_equal(found, [0.0, 0.0])


def _one_error_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("srlive: error:"), lines
    return lines[0]


@pytest.mark.parametrize(
    ("case", "expected"),
    [
        ("ten-frames", "not a whole number of sets of 9"),
        ("missing", "not found"),
        ("sideways", "--order must be angle-major or phase-major"),
        ("txt", "unknown raw file type '.txt'"),
        ("pixel-text", "--pixel-nm needs a number"),
        ("negative-na", "na"),
        ("store-layout", "records its own layout: drop --angles"),
        ("plot-pdf", "give a .png path"),
        ("negative-floats", "do not fit a store's uint16 raw frames"),
    ],
)
def test_bad_input_is_one_line_and_no_output(
    case, expected, sim_frames, files, tmp_path, capsys
) -> None:
    path, extra = files["angle"], []
    if case == "ten-frames":
        path = _write_tiff(tmp_path / "ten.tif", sim_frames[:10])
    elif case == "missing":
        path = tmp_path / "nothing.tif"
    elif case == "sideways":
        extra = ["--order", "sideways"]
    elif case == "txt":
        path = tmp_path / "frames.txt"
        path.write_text("1 2 3\n")
    elif case == "pixel-text":
        extra = ["--pixel-nm", "sixty-five"]
    elif case == "negative-na":
        extra = ["--na", "-1"]
    elif case == "store-layout":
        path, extra = _store(tmp_path / "in.zarr", sim_frames), ["--angles", "3"]
    elif case == "plot-pdf":
        extra = ["--plot", str(tmp_path / "p.pdf")]
    elif case == "negative-floats":  # offset-subtracted data: a .tif output takes it, a store not
        path = tmp_path / "sub.npy"
        np.save(path, sim_frames.astype(np.float32) - 100.0)
    out = tmp_path / "out.zarr"
    code, _, err = _run(capsys, str(path), "--method", "wiener-sim", "--out", str(out), *extra)
    assert code == 2
    assert expected in _one_error_line(err)
    assert not out.exists() and not (tmp_path / "p.pdf").exists()


def test_tiff_overwrite_refuses_what_is_not_a_tiff(files, tmp_path, capsys) -> None:
    out = tmp_path / "notes.tif"
    out.write_text("my notes")
    argv = [str(files["angle"]), "--method", "wiener-sim", "--out", str(out), "--overwrite"]
    code, _, err = _run(capsys, *argv)
    assert code == 2 and "not a TIFF file" in _one_error_line(err)
    assert out.read_text() == "my notes"
    code, _, err = _run(capsys, str(out), "--method", "wiener-sim", "--out", str(out))
    assert code == 2  # in place: refused, never read or written
    assert out.read_text() == "my notes"


def _store(path: Path, frames: np.ndarray) -> Path:
    """A raw store of the angle-major sets ``frames`` (as `srlive run` leaves one)."""
    with AcquisitionStore.create(
        path,
        frame_shape=frames.shape[-2:],
        pixel_nm=65.0,
        n_angles=3,
        n_phases=3,
        sr_shape=None,
        sr_pixel_nm=None,
        laser_lines=[488],
        profile={},
        run={"laser_line": 488},
    ) as store:
        for t, raw in enumerate(frames.reshape(-1, 3, 3, *frames.shape[-2:])):
            store.write_set(t, raw, [{"time_s": 0.5 * t}] * 9)
    return path


def test_a_store_still_reconstructs_with_the_pattern_per_set(sim_frames, tmp_path, capsys) -> None:
    store = _store(tmp_path / "in.zarr", sim_frames)
    out = tmp_path / "r.zarr"
    code, summary, err = _run(
        capsys, str(store), "--method", "wiener-sim", "--out", str(out), "--json", *QUIET
    )
    assert code == 0, err
    assert summary["format"] == "srlive-store" and summary["sr_images"] == 2
    assert summary["pixel_nm_from"] == "store"
    for entry in summary["sets"]:
        assert all(a["found"] for a in entry["pattern"]), entry
    reader = open_store(out)
    assert reader.n_sets == 2 and reader.read_sr(1).shape == (2 * N, 2 * N)
    np.testing.assert_array_equal(reader.read_set(1), open_store(store).read_set(1))
    np.testing.assert_array_equal(reader.sr_table["time_s"], [0.0, 0.5])
    np.testing.assert_array_equal(reader.sr_table["pattern_a0_found"], [1.0, 1.0])
    assert reader.attrs["run"]["reconstructed_from"] == str(store)
