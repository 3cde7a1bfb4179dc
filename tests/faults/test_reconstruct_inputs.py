"""Fault injection on `srlive reconstruct` inputs: methods and weights files (issue 13 item 13).

The method is resolved and checked against the input before any output exists: a bad one
gives one line and leaves ``--out`` as it was (absent, or the store that was there).
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from srlive.cli import main
from srlive.recon.learned.weights_meta import WEIGHTS_DIR
from srlive.storage import AcquisitionStore, open_store
from srlive.storage.noise import NoiseRecord

H = W = 32


def _store(path: Path, angles: int, phases: int, n: int = 2) -> Path:
    """A small raw store of ``n`` sets of ``angles`` x ``phases`` frames."""
    rng = np.random.default_rng(0)
    camera = NoiseRecord(100.0, 0.5, 1.5, "test")
    geometry = {"frame_shape": (H, W), "pixel_nm": 65.0, "n_angles": angles, "n_phases": phases}
    with AcquisitionStore.create(path, **geometry, laser_lines=[488], camera=camera) as store:
        for t in range(n):
            store.write_set(t, rng.integers(100, 2000, (angles, phases, H, W), np.uint16), [])
    return path


@pytest.fixture(scope="module")
def stores(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("inputs")
    return {"sim9": _store(root / "sim9.zarr", 3, 3), "wf": _store(root / "wf.zarr", 1, 1)}


def _one_error_line(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("srlive: error:"), err
    return err[0]


def test_a_weights_file_is_a_method(stores, tmp_path, capsys) -> None:
    """A user's (fine-tuned) model given by its path reconstructs like a shipped one."""
    mine = tmp_path / "my.safetensors"
    shutil.copy(WEIGHTS_DIR / "dl-sim3.safetensors", mine)
    out = tmp_path / "r.zarr"
    argv = ["reconstruct", str(stores["sim9"]), "--method", str(mine), "--out", str(out)]
    assert main(argv) == 0, capsys.readouterr().err
    reader = open_store(out)
    assert reader.n_sets == 2 and reader.read_sr(1).shape == (2 * H, 2 * W)
    assert np.isfinite(reader.read_sr(0)).all()


@pytest.mark.parametrize(
    ("method", "store", "expected"),
    [
        ("wiener-sim", "wf", "needs SIM sets of 3 or more phases"),  # cannot take the sets
        ("MODEL:dl-sim9", "wf", "needs 3x3 SIM sets"),  # nor a weights file of such a model
        ("missing.safetensors", "sim9", "weights not found"),
        ("GARBAGE", "sim9", "not a valid srlive model"),
        ("wiener", "sim9", "unknown reconstruction method 'wiener'"),
    ],
)
def test_a_bad_method_leaves_no_output(stores, tmp_path, capsys, method, store, expected) -> None:
    if method == "GARBAGE":
        method = str(tmp_path / "bad.safetensors")
        Path(method).write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json}")
    elif method.startswith("MODEL:"):
        method = str(shutil.copy(WEIGHTS_DIR / f"{method[6:]}.safetensors", tmp_path / "m9.st"))
    out = tmp_path / "r.zarr"
    argv = ["reconstruct", str(stores[store]), "--method", method, "--out", str(out)]
    assert main(argv) == 2
    assert expected in _one_error_line(capsys)
    assert not out.exists()


def test_a_bad_method_leaves_the_store_at_out_untouched(stores, tmp_path, capsys) -> None:
    """With --overwrite too: the old store is only replaced once the method is known to work."""
    out = tmp_path / "r.zarr"
    argv = ["reconstruct", str(stores["sim9"]), "--method", "dl-sim3", "--out", str(out)]
    assert main(argv) == 0
    before = open_store(out).read_sr(1)
    argv = ["reconstruct", str(stores["wf"]), "--method", "wiener-sim", "--out", str(out)]
    assert main([*argv, "--overwrite"]) == 2
    assert "needs SIM sets of 3 or more phases" in _one_error_line(capsys)
    reader = open_store(out)
    assert reader.n_sets == 2 and np.array_equal(reader.read_sr(1), before)
