"""Fine-tuning on several stores (issue 19 item 4): the stores' wiener-sim targets are made once
on a real Dask LocalCluster into OUT.targets (exactly `srlive reconstruct`'s output), reused
by a later run, and pairs are drawn from every store."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from srlive.cli import main
from srlive.learn.store_pairs import ManyStorePairs
from srlive.learn.targets import targets_dir
from srlive.learn.train import TrainSettings, train_model
from srlive.recon.learned.tasks import TASKS
from srlive.recon.offline import reconstruct_input
from srlive.storage import open_store
from srlive.storage.omezarr import AcquisitionStore

pytest.importorskip("distributed")

TINY = ["--steps", "2", "--batch", "2", "--patch", "32"]


def _train(out: Path, *stores: Path, extra: tuple[str, ...] = ()) -> int:
    argv = ["train", "dl-sim3", "--fine-tune", *map(str, stores), *TINY, *extra]
    return main([*argv, "--out", str(out)])


def _one_error_line(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("srlive: error:"), err
    return err[0]


@pytest.fixture(scope="module")
def fine_tuned(tmp_path_factory, make_sim9_store):
    """dl-sim3 fine-tuned 2 steps on a.zarr and b.zarr, targets on a LocalCluster of 2.

    Through the API: the CLI adds the trust calibration (seconds of simulation); the CLI's
    flags reaching here is what the one-line errors below show.
    """
    root = tmp_path_factory.mktemp("finetune")
    a = make_sim9_store(root / "a.zarr", 3, 64, seed=0)
    b = make_sim9_store(root / "b.zarr", 2, 64, seed=1)
    out = root / "tuned.safetensors"
    settings = TrainSettings(steps=2, batch=2, patch=32, width=8)  # one data worker, as the CLI
    meta = train_model(
        "dl-sim3", out, settings, progress=False, fine_tune_store=[a, b], cluster_workers=2
    )
    assert meta["steps"] == 2 and meta["fine_tune_targets"]["reconstructed_sets"] == 5
    assert meta["fine_tune_targets"]["cluster"] == "LocalCluster(2 processes)"
    return a, b, out


def test_targets_of_every_store_are_its_wiener_sim_reconstruction(fine_tuned, tmp_path):
    a, b, out = fine_tuned
    targets = targets_dir(out)
    assert sorted(p.name for p in targets.iterdir()) == ["a.zarr", "b.zarr"]
    for store in (a, b):
        reference = tmp_path / f"ref-{store.name}"
        reconstruct_input(store, "wiener-sim", reference)
        made, ref = open_store(targets / store.name), open_store(reference)
        assert made.complete and made.n_sets == ref.n_sets == open_store(store).n_sets
        for t in range(ref.n_sets):
            assert np.array_equal(made.read_sr(t), ref.read_sr(t)), (store.name, t)


def test_pairs_are_drawn_from_every_store_by_its_share_of_sets(fine_tuned):
    a, b, out = fine_tuned
    targets = targets_dir(out)
    pairs = ManyStorePairs(
        TASKS["dl-sim3"], [a, b], 32, [targets / "a.zarr", targets / "b.zarr"], seed=0
    )
    rng = np.random.default_rng(0)
    drawn = [pairs.draw(rng) for _ in range(20)]
    assert {p.store for p in drawn} == {0, 1}
    assert all(p.t < (3, 2)[p.store] for p in drawn)
    # dl-sim3 reads its 3 frames demodulated by their own fringe, on the 2x grid
    assert all(p.x.shape == (9, 64, 64) and p.y.shape == (1, 64, 64) for p in drawn)
    assert all(p.span >= float(p.y.max() - p.y.min()) > 0 for p in drawn)
    share = np.mean([pairs.draw(rng).store == 0 for _ in range(200)])
    assert 0.5 < share < 0.7  # a holds 3 of the 5 sets


def test_a_second_run_reuses_the_complete_targets(fine_tuned, tmp_path):
    a, b, out = fine_tuned
    targets = targets_dir(out)
    stamps = {p: (p / "zarr.json").stat().st_mtime_ns for p in targets.iterdir()}
    # a new run to the same weights, the stores in the other order
    meta = train_model(
        "dl-sim3",
        out,
        TrainSettings(steps=1, batch=1, patch=32, width=8, workers=0),
        resume=False,
        progress=False,
        fine_tune_store=[b, a],
        cluster_workers=2,
    )
    assert meta["fine_tune_targets"]["reconstructed_sets"] == 0
    assert meta["fine_tune_targets"]["cluster"] is None  # no cluster was started
    assert len(meta["fine_tune_targets"]["reused"]) == 2
    assert meta["fine_tune_store"] == [str(a.resolve()), str(b.resolve())]
    assert stamps == {p: (p / "zarr.json").stat().st_mtime_ns for p in targets.iterdir()}


def test_one_store_is_a_list_of_one(tmp_path, make_sim9_store):
    store = make_sim9_store(tmp_path / "one.zarr", 2, 64)
    out = tmp_path / "one.safetensors"
    settings = TrainSettings(steps=1, batch=1, patch=32, width=8, workers=0)
    meta = train_model("dl-sim9", out, settings, progress=False, fine_tune_store=store)
    assert meta["fine_tune_targets"]["reconstructed_sets"] == 2
    target = open_store(targets_dir(out))  # one store: the targets path is its output
    assert target.complete and target.n_sets == 2
    assert meta["fine_tune_store"] == [str(store.resolve())]


def test_a_checkpoint_from_before_several_stores_still_resumes(tmp_path, make_sim9_store):
    from safetensors.torch import save

    from srlive.learn.checkpoint import FORMAT, read_checkpoint, write_atomic

    store = make_sim9_store(tmp_path / "one.zarr", 1, 32)
    out = tmp_path / "n2n.safetensors"
    settings = TrainSettings(steps=2, batch=1, patch=32, width=8, workers=0)
    train_model("dl-denoise", out, settings, progress=False, fine_tune_store=store)
    assert not targets_dir(out).exists()  # Noise2Noise needs no targets
    ckpt = read_checkpoint(out.with_suffix(".ckpt"))
    state = dict(ckpt.state)
    state["identity"] = {**state["identity"], "fine_tune_store": str(store.resolve())}
    meta = {"format": FORMAT, "state": json.dumps(state)}
    write_atomic(ckpt.path, save(ckpt.tensors, metadata=meta))  # as it was written then
    again = train_model("dl-denoise", out, settings, progress=False, fine_tune_store=store)
    assert again["steps"] == 2


def _widefield_store(path: Path) -> Path:
    store = AcquisitionStore.create(
        path,
        frame_shape=(32, 32),
        pixel_nm=65.0,
        n_angles=1,
        n_phases=1,
        sr_shape=None,
        sr_pixel_nm=None,
        laser_lines=[488],
        profile={},
        run={"laser_line": 488},
    )
    with store:
        for t in range(2):
            store.write_set(t, np.full((1, 1, 32, 32), 200, np.uint16), [{"time_s": 0.1 * t}])
    return path


def test_bad_stores_are_refused_in_one_line_before_any_target(tmp_path, capsys, make_sim9_store):
    good = make_sim9_store(tmp_path / "good.zarr", 1, 32)
    out = tmp_path / "m.safetensors"
    assert _train(out, good, tmp_path / "missing.zarr") == 2
    assert "missing.zarr: no such store" in _one_error_line(capsys)
    assert _train(out, good, _widefield_store(tmp_path / "wf.zarr")) == 2
    assert "wf.zarr: fine-tuning dl-sim3 needs sim9 sets, store has 1x1" in _one_error_line(capsys)
    (tmp_path / "other").mkdir()
    twin = make_sim9_store(tmp_path / "other" / "good.zarr", 1, 32)
    assert _train(out, good, twin) == 2
    assert "same name" in _one_error_line(capsys)
    assert _train(out, good, extra=("--workers", "1", "--scheduler", "tcp://x:1")) == 2
    assert "not both" in _one_error_line(capsys)
    assert not targets_dir(out).exists() and not out.exists()
