"""Distributed reconstruction on a real Dask LocalCluster (worker processes): the same output
as one process, bit for bit, and complete after a killed client or worker."""

from __future__ import annotations

import importlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import zarr

from simulators.stores import synthetic_sim_store
from srlive.cli import main
from srlive.recon.distributed import reconstruct_distributed
from srlive.recon.offline import reconstruct_input
from srlive.storage import open_store

distributed = pytest.importorskip("distributed")

TIMING_COLUMNS = {"recon_ms", "latency_ms"}


def make_store(path: Path, n_sets: int, size: int, seed: int = 0) -> Path:
    return synthetic_sim_store(path, n_sets, size, seed)


def assert_same_output(a: Path, b: Path) -> None:
    """Raw, SR and every table column but timing equal bit for bit; both complete."""
    ga, gb = zarr.open_group(str(a), mode="r"), zarr.open_group(str(b), mode="r")
    for name in ("raw/0", "sr/0"):
        assert ga[name].shape == gb[name].shape
        assert np.array_equal(ga[name][:], gb[name][:], equal_nan=True), name
    for table in ("tables/frames", "tables/sr"):
        assert sorted(ga[table].array_keys()) == sorted(gb[table].array_keys())
        for col in ga[table].array_keys():
            if col not in TIMING_COLUMNS:
                x, y = ga[table][col][:], gb[table][col][:]
                assert np.array_equal(x, y, equal_nan=True), f"{table}/{col}"
    assert ga.attrs["srlive"]["complete"] and gb.attrs["srlive"]["complete"]
    reader = open_store(b)
    assert sorted(reader.sr_status()) == list(range(reader.n_sets))  # every set exactly once
    assert len(reader.sr_table["t"]) == reader.n_sets
    for t in range(reader.n_sets):
        reader.verify_set(t, reader.read_set(t).reshape(-1, *reader.raw.shape[-2:]))


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    root = tmp_path_factory.mktemp("dist")
    store = make_store(root / "in.zarr", 12, 64)
    single = root / "single.zarr"
    reconstruct_input(store, "wiener-sim", single)
    return store, single


def test_local_cluster_output_equals_one_process_bit_for_bit(small, tmp_path):
    store, single = small
    out = tmp_path / "dist.zarr"
    summary = reconstruct_distributed([store], "wiener-sim", out, workers=2)
    assert summary["outputs"][0]["reconstructed_now"] == 12
    assert_same_output(single, out)
    # the per-set time and pattern verdict are in the output's tables
    sr = open_store(out).sr_table
    assert np.all(sr["recon_ms"] > 0) and np.all(sr["pattern_a0_found"] == 1)


def test_several_inputs_each_get_their_output(small, tmp_path):
    store, single = small
    other = make_store(tmp_path / "other.zarr", 4, 64, seed=1)
    code = main(
        [
            "reconstruct",
            str(store),
            str(other),
            "--method",
            "wiener-sim",
            "--out",
            str(tmp_path / "outs"),
            "--workers",
            "2",
            "--no-progress",
        ]
    )
    assert code == 0
    assert_same_output(single, tmp_path / "outs" / "in.zarr")
    assert open_store(tmp_path / "outs" / "other.zarr").n_sets == 4


def _wait_for(predicate, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError("condition not reached")
        time.sleep(0.05)


def _durable_sets(out: Path) -> int:
    try:
        return json.loads((out / "zarr.json").read_text())["attributes"]["srlive"]["sr_flushed"]
    except (OSError, ValueError, KeyError):
        return 0


def test_sigkill_of_the_client_then_rerun_completes_exactly_once(tmp_path):
    store = make_store(tmp_path / "in.zarr", 40, 128)
    single = tmp_path / "single.zarr"
    reconstruct_input(store, "wiener-sim", single)
    out = tmp_path / "dist.zarr"
    cmd = [
        sys.executable,
        "-m",
        "srlive",
        "reconstruct",
        str(store),
        "--method",
        "wiener-sim",
        "--out",
        str(out),
        "--workers",
        "2",
        "--no-progress",
        "--json",
    ]
    proc = subprocess.Popen(
        cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True
    )
    try:
        _wait_for(lambda: _durable_sets(out) >= 6)
        proc.send_signal(signal.SIGKILL)  # the client only: its workers are orphaned
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    done = _durable_sets(out)
    assert 6 <= done < 40, done
    assert json.loads((out / "zarr.json").read_text())["attributes"]["srlive"]["complete"] is False
    rerun = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert rerun.returncode == 0, rerun.stderr
    summary = json.loads(rerun.stdout)
    assert summary["outputs"][0]["resumed"] is True
    assert summary["outputs"][0]["reconstructed_now"] == 40 - done
    assert_same_output(single, out)
    _kill_group(proc.pid)  # the orphaned workers of the killed client, if still there


def _kill_group(pgid: int) -> None:
    try:
        os.killpg(pgid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def test_sigkill_of_a_worker_mid_job_still_completes_the_same(tmp_path):
    from distributed import Client, LocalCluster

    store = make_store(tmp_path / "in.zarr", 40, 128)
    single = tmp_path / "single.zarr"
    reconstruct_input(store, "wiener-sim", single)
    out = tmp_path / "dist.zarr"
    with (
        LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
        ) as cluster,
        Client(cluster) as client,
    ):
        result: dict = {}
        address = cluster.scheduler_address
        job = threading.Thread(
            target=lambda: result.update(
                reconstruct_distributed([store], "wiener-sim", out, scheduler=address)
            )
        )
        job.start()
        _wait_for(lambda: _durable_sets(out) >= 6)
        pids = client.run(os.getpid)
        victim = next(iter(pids.values()))
        os.kill(victim, signal.SIGKILL)  # the nanny restarts it; its tasks run elsewhere
        job.join(timeout=600)
    assert not job.is_alive() and result["outputs"][0]["n_sets"] == 40
    assert_same_output(single, out)


def test_evaluate_over_many_stores_scores_against_wiener_on_the_cluster(small, tmp_path):
    from srlive.learn.evaluate_stores import evaluate_stores

    store, _ = small
    other = make_store(tmp_path / "other.zarr", 3, 64, seed=2)
    out = tmp_path / "eval"
    summary = evaluate_stores([store, other], ["dl-sim9", "dl-denoise"], out, workers=2)
    sim9 = summary["methods"]["dl-sim9"]
    assert [sim9[str(s)]["sets"] for s in (store, other)] == [12, 3]
    for entry in sim9.values():
        assert 0.3 < entry["ssim_vs_wiener_median"] <= 1.0
        assert entry["confidence_median"] is not None
    assert summary["methods"]["dl-denoise"][str(store)]["comparable"] is False
    # the reconstructions are outputs of the distributed path, reused by a second evaluation
    reference = out / "wiener-sim" / "in.zarr"
    stamp = (reference / "zarr.json").stat().st_mtime_ns
    evaluate_stores([store, other], ["dl-sim9"], out, workers=1)
    assert (reference / "zarr.json").stat().st_mtime_ns == stamp


def test_a_learned_model_is_loaded_once_per_worker(small, tmp_path):
    from distributed import Client

    from srlive.recon.distributed import local_cluster

    store, _ = small
    with local_cluster(2, dashboard_address=None) as cluster, Client(cluster) as client:
        summary = reconstruct_distributed(
            [store], "dl-sim9", tmp_path / "dl.zarr", scheduler=cluster.scheduler_address
        )
        module = "srlive.recon.distributed"
        loads = client.run(lambda: dict(importlib.import_module(module).WORKER_LOADS))
    assert summary["outputs"][0]["reconstructed_now"] == 12
    counts = [n for per_worker in loads.values() for n in per_worker.values()]
    assert counts and all(n == 1 for n in counts)  # 11 tasks, at most one load per worker
    confidence = open_store(tmp_path / "dl.zarr").sr_table["confidence"]
    assert np.all(np.isfinite(confidence))
