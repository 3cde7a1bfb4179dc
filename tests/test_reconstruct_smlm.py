"""`srlive reconstruct --method localization` (issue 18 item 5): stored SMLM bursts and raw
stacks localised into a store (localisation table, growing rendering), an OME-TIFF,
ThunderSTORM CSV and Picasso HDF5; one-line errors for bad input."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import h5py
import numpy as np
import pytest
import tifffile
import yaml
import zarr

from simulators.fluctuation_fields import prior_free_emitters
from simulators.smlm import simulate_smlm
from srlive.cli import main
from srlive.recon.offline_smlm import read_localizations
from srlive.recon.smlm import score
from srlive.recon.smlm.export import THUNDERSTORM_2D
from srlive.storage import AcquisitionStore, open_store
from srlive.storage.noise import NoiseRecord

N = 48
SET = 100
QUIET = ["--no-progress"]


@pytest.fixture(scope="module")
def burst():
    em = prior_free_emitters(("segments", "rings"), (N * 65.0, N * 65.0), seed=1, density=2)
    return simulate_smlm(em, 2 * SET, activation_mw=0.5, seed=2)


@pytest.fixture(scope="module")
def inputs(burst, tmp_path_factory) -> dict[str, Path]:
    """The burst as a TIFF and as a store of two 100-frame sets (as `--modality smlm`)."""
    root = tmp_path_factory.mktemp("smlm")
    tifffile.imwrite(root / "burst.tif", burst.frames)
    store = AcquisitionStore.create(
        root / "bursts.zarr",
        frame_shape=(N, N),
        pixel_nm=65.0,
        n_angles=1,
        n_phases=SET,
        sr_shape=None,
        sr_pixel_nm=None,
        laser_lines=[640],
        profile={},
        run={"modality": "smlm"},
        camera=NoiseRecord(100.0, 0.46, 1.6, source="camera"),
    )
    with store:
        for t in range(2):
            rows = [{"time_s": 0.01 * (SET * t + i)} for i in range(SET)]
            store.write_set(t, burst.frames[SET * t : SET * (t + 1)].reshape(1, SET, N, N), rows)
    return {"tif": root / "burst.tif", "store": root / "bursts.zarr"}


def run(*argv: str) -> int:
    return main(["reconstruct", *argv, *QUIET])


def test_store_of_bursts_to_store_with_table_and_growing_rendering(inputs, burst, tmp_path, capsys):
    out = tmp_path / "locs.zarr"
    args = [str(inputs["store"]), "--method", "localization", "--out", str(out), "--json"]
    assert run(*args, "--emission-nm", "670") == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["camera"] == {"offset_adu": 100.0, "e_per_adu": 0.46, "read_noise_e": 1.6}
    assert summary["input_frames"] == 2 * SET and summary["n_sets"] == 2
    reader = open_store(out)
    assert reader.complete and reader.n_sets == 2
    assert np.array_equal(reader.read_set(1).reshape(SET, N, N), burst.frames[SET:])
    locs = read_localizations(out)
    assert len(locs) == summary["localizations"] > 100
    assert locs["frame"].max() >= SET  # frames numbered along the stream, across sets
    result = score(locs.columns, burst.truth)
    assert result.jaccard > 0.5 and result.rmse_lateral_nm < 30
    first, last = reader.read_sr(0), reader.read_sr(1)
    assert reader.sr_pixel_nm == 10.0 and last.shape == (N * 65 // 10, N * 65 // 10)
    n_first = int(np.count_nonzero(locs["frame"] < SET))
    assert first.sum() == pytest.approx(n_first, rel=0.01)  # the image as it grew
    assert last.sum() == pytest.approx(len(locs), rel=0.01)
    attrs = zarr.open_group(str(out), mode="r").attrs["srlive"]
    assert attrs["run"]["method"] == "localization" and attrs["run"]["modality"] == "smlm"
    yaozarrs = pytest.importorskip("yaozarrs")
    for image in ("", "raw", "sr"):  # the collection and the rendering open as NGFF 0.5
        yaozarrs.validate_zarr_store(str(out / image))


def test_tiff_stack_to_csv_hdf5_and_tiff(inputs, burst, tmp_path, capsys):
    csv_path, hdf5, tif = tmp_path / "locs.csv", tmp_path / "locs.hdf5", tmp_path / "sr.tif"
    code = run(
        str(inputs["tif"]),
        "--method",
        "localization",
        "--out",
        str(tif),
        "--export",
        str(csv_path),
        "--export",
        str(hdf5),
        "--render",
        "histogram",
        "--render-nm",
        "20",
    )
    assert code == 0
    captured = capsys.readouterr()
    assert "localisations in 200 frames" in captured.out
    assert "default profile's pixel" in captured.err  # every default taken is named
    image = tifffile.imread(tif)
    with csv_path.open() as handle:
        rows = list(csv.reader(handle))
    assert tuple(rows[0]) == THUNDERSTORM_2D
    assert len(rows) - 1 == image.sum()  # one histogram count per localisation
    frames = np.array([int(r[1]) for r in rows[1:]])
    assert frames.min() >= 1 and frames.max() <= 200  # ThunderSTORM counts frames from 1
    found = {
        "frame": frames - 1,
        "x_nm": np.array([float(r[2]) for r in rows[1:]]),
        "y_nm": np.array([float(r[3]) for r in rows[1:]]),
    }
    assert score(found, burst.truth).jaccard > 0.5
    with h5py.File(hdf5, "r") as handle:
        locs = handle["locs"][:]
    assert locs.dtype.names[:3] == ("frame", "x", "y") and locs.dtype["frame"] == np.uint32
    assert len(locs) == len(rows) - 1
    picasso_x = (locs["x"].astype(np.float64) + 0.5) * 65.0  # pixel k's centre at k
    assert np.allclose(np.sort(picasso_x), np.sort(found["x_nm"]), atol=0.01)
    info = list(yaml.safe_load_all((tmp_path / "locs.yaml").read_text()))
    assert info[0]["Width"] == N and info[0]["Height"] == N and info[0]["Frames"] == 200
    assert info[1]["Pixelsize"] == 65.0


def test_drift_correction_on_request(inputs, tmp_path, capsys):
    out = tmp_path / "d.csv"
    assert (
        run(
            str(inputs["tif"]),
            "--method",
            "localization",
            "--out",
            str(out),
            "--json",
            "--drift-blocks",
            "2",
        )
        == 0
    )
    summary = json.loads(capsys.readouterr().out)
    assert summary["drift"]["blocks"] == 2 and summary["drift"]["pairs_total"] == 1
    assert summary["exports"] == [str(out)]


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--threshold", "-1"], "threshold"),
        (["--box", "8"], "box must be odd"),
        (["--export", "x.txt"], "unknown localisation export"),
        (["--angles", "3"], "--angles: not used by localization"),
        (["--window", "20"], "--window: not used by localization"),
        (["--render-nm", "0"], "render_nm"),
    ],
)
def test_bad_options_are_one_line_errors(inputs, tmp_path, capsys, extra, message):
    out = tmp_path / "x.zarr"
    assert run(str(inputs["tif"]), "--method", "localization", "--out", str(out), *extra) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and "\n" not in err and err.startswith("srlive: error:")
    assert not out.exists()


def test_other_inputs_and_methods_are_refused(inputs, tmp_path, capsys, make_sim9_store):
    sim = make_sim9_store(tmp_path / "sim.zarr", 1, 32)
    assert run(str(sim), "--method", "localization", "--out", str(tmp_path / "o.zarr")) == 2
    assert "smlm methods need bursts" in capsys.readouterr().err
    assert (
        run(
            str(inputs["tif"]),
            "--method",
            "esrrf",
            "--out",
            str(tmp_path / "e.zarr"),
            "--threshold",
            "5",
        )
        == 2
    )
    assert "--threshold: only for --method localization" in capsys.readouterr().err
    existing = tmp_path / "exists.csv"
    existing.write_text("keep me")
    assert run(str(inputs["tif"]), "--method", "localization", "--out", str(existing)) == 2
    assert "exists" in capsys.readouterr().err and existing.read_text() == "keep me"


@pytest.mark.skipif(
    not (Path(__file__).parents[1] / ".peers/picasso/bin/python").is_file(),
    reason="Picasso peer env not set up (benchmarks/peers/picasso/setup_env.sh)",
)
def test_picasso_opens_the_hdf5_export(inputs, tmp_path):
    """Picasso's own reader (in its env, never imported here) loads srlive's export."""
    import subprocess

    out = tmp_path / "locs.hdf5"
    assert run(str(inputs["tif"]), "--method", "localization", "--out", str(out)) == 0
    python = Path(__file__).parents[1] / ".peers/picasso/bin/python"
    script = (
        "import sys, json, warnings; warnings.simplefilter('ignore');"
        "from picasso import io; locs, info = io.load_locs(sys.argv[1]);"
        "print(json.dumps({'n': len(locs), 'width': info[0]['Width'],"
        " 'columns': list(locs.columns)}))"
    )
    done = subprocess.run(
        [str(python), "-c", script, str(out)], capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-500:]
    loaded = json.loads(done.stdout.strip().splitlines()[-1])
    with h5py.File(out, "r") as handle:
        written = len(handle["locs"])
    assert loaded["width"] == N and {"frame", "x", "y", "lpx"} <= set(loaded["columns"])
    assert 0.97 * written <= loaded["n"] <= written  # it drops only x or y < 0 (edge half pixel)


def test_astigmatic_3d_through_the_command_line(tmp_path, capsys):
    """A z calibration file makes the fit astigmatic: z and its bound in the CSV."""
    from simulators.camera_model import CameraModel
    from simulators.smlm import uniform_emitters
    from simulators.smlm_psf import PSFRenderer, PupilOptics
    from srlive.recon.smlm import SMLMOptics, calibrate_astigmatism

    optics = PupilOptics(astigmatism_nm=80.0, z_range_nm=600.0)
    z = np.arange(-500, 501, 25.0)
    stack = PSFRenderer(optics).render(
        (32, 32),
        np.arange(len(z)),
        len(z),
        np.full(len(z), 16.3),
        np.full(len(z), 15.6),
        np.full(len(z), 20000.0),
        z,
    )
    rng = np.random.default_rng(3)
    stack = np.stack([CameraModel().expose(im + 50, 10.0, rng) for im in stack])
    calibration = calibrate_astigmatism(stack, z, SMLMOptics())
    cal_file = tmp_path / "z.yaml"
    cal_file.write_text(yaml.safe_dump(calibration.model_dump()))
    em = uniform_emitters(300, (N * 65.0, N * 65.0), seed=4)
    depth = np.random.default_rng(5).uniform(-150, 150, len(em))
    burst = simulate_smlm(em, 60, z_nm=depth, optics=optics, seed=6)
    np.save(tmp_path / "astig.npy", burst.frames)
    out = tmp_path / "z.csv"
    args = [str(tmp_path / "astig.npy"), "--method", "localization", "--out", str(out)]
    assert run(*args, "--z-calibration", str(cal_file), "--box", "9") == 0
    with out.open() as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) > 20 and "z [nm]" in rows[0] and "uncertainty_z [nm]" in rows[0]
    found = {
        "frame": np.array([int(r["frame"]) - 1 for r in rows]),
        "x_nm": np.array([float(r["x [nm]"]) for r in rows]),
        "y_nm": np.array([float(r["y [nm]"]) for r in rows]),
        "z_nm": np.array([float(r["z [nm]"]) for r in rows]),
    }
    assert score(found, burst.truth).rmse_z_nm < 100
    bad = tmp_path / "bad.yaml"
    bad.write_text("x: {sigma0_nm: -1}\n")
    capsys.readouterr()
    assert run(*args, "--z-calibration", str(bad), "--overwrite") == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("srlive: error:") and "\n" not in err and "sigma0_nm" in err


def test_the_method_registry_lists_localization_for_smlm_bursts(capsys):
    """`localization` is a registered method (srlive.recon.methods) that the help names."""
    from srlive.recon.methods import get_method

    method = get_method("localization")
    assert method.localizes and not method.burst and not method.learned
    with pytest.raises(SystemExit):
        run("--help")
    assert "SMLM bursts: localization" in " ".join(capsys.readouterr().out.split())
