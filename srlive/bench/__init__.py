"""Benchmarks: ``srlive bench NAME [options]`` runs one and prints its result as JSON.

One module per benchmark in this package, each with its own options. To add one, write
``srlive/bench/<module>.py`` with

* a docstring: what it measures and against what (``srlive bench NAME --help`` prints it),
* ``add_arguments(parser: argparse.ArgumentParser) -> None``: its flags, and only its,
* ``run(args: argparse.Namespace) -> dict``: the JSON-ready result, with ``"benchmark"``,
* importable functions (``bench_<name>(...)``) that tests and notebooks call directly,

and add one line to :data:`BENCHMARKS`. The runner (:mod:`srlive.bench.run`) adds the
command line, the machine (CPU model, vector units) and its load average before and after
to every result, and ``--out FILE`` writes the JSON to a file as well. Shared helpers live
in :mod:`srlive.bench.common` (machine, percentiles, the simulated microscope) and
:mod:`srlive.bench.live` (the live pipeline's sessions and process figures).

Benchmarks sit above the rest of srlive: they import anything in ``srlive`` and
``simulators``; nothing imports them except ``srlive bench`` itself, lazily
(``tests/bench/test_layout.py`` checks both). Their tests are in ``tests/bench/``.
"""

from __future__ import annotations

from typing import NamedTuple

__all__ = ["BENCHMARKS", "Benchmark"]


class Benchmark(NamedTuple):
    """A registered benchmark: its module in this package and a one-line summary."""

    module: str
    summary: str


BENCHMARKS: dict[str, Benchmark] = {
    "camera": Benchmark("camera", "simulated camera frames/s and CPU per frame"),
    "acquisition": Benchmark(
        "acquisition", "SIM sets/s: hardware sequencing, software timing, pymmcore-plus MDA"
    ),
    "recon": Benchmark("recon", "Wiener SIM time per 9-frame set and FRC resolution"),
    "sim-real": Benchmark("sim_real", "blind SIM on real data beside napari-sim-processor"),
    "distributed": Benchmark("distributed", "Dask: 1 and 2 workers against one process"),
    "storage": Benchmark("storage", "OME-Zarr writes against plain sequential writes"),
    "models": Benchmark("models", "learned models: time per set, with and without confidence"),
    "pipeline": Benchmark("pipeline", "live pipeline: model-only against end-to-end, latency"),
    "soak": Benchmark("soak", "a long run at the camera's top speed: frames stored, memory"),
    "optimizer": Benchmark("optimizer", "the optimizer against default and best fixed settings"),
    "fluctuation": Benchmark("fluctuation", "eSRRF and SOFI against ground truth"),
    "esrrf-peer": Benchmark("esrrf_peer", "srlive's eSRRF beside NanoPyx's on the same bursts"),
    "smlm": Benchmark("smlm", "SMLM localisation against ground truth, beside Picasso"),
}
