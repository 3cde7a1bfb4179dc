"""Reconstruct the sets of one or more inputs on a Dask cluster (a local one by default).

The client checks every input and output, resolves the method and reconstructs set 0 of each
input itself (for ``wiener-sim`` that is the blind calibration every other set is estimated
next to), then creates each output with its time axis sized for all sets. Every other set is
one Dask task: a worker reads it from the input, reconstructs it and writes its raw frames
and SR image straight into the output's arrays (one chunk file per set and array, so no two
workers ever write the same file), fsyncs them and returns the set's table rows. Only the
client writes tables and the store's state, through :class:`AcquisitionStore`.

Resumable: rows are made durable every 0.5 s and a set counts as done once its rows are. A
rerun of the same command on an incomplete output resumes it (:meth:`AcquisitionStore.resume`)
and submits only the missing sets; a set whose chunks were written but whose rows were lost
is written again, with the same bytes. The output is marked complete at the end, with its
tables sorted by set, so it equals a single-process ``srlive reconstruct`` output.

Each worker process loads an input's reconstruction (and a learned model's weights) once,
on its first task of that input, and keeps it for the rest of the job.
"""

from __future__ import annotations

import math
import os
import sys
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from srlive.process_env import HEAP_REUSE, child_environ
from srlive.recon.file_input import SetSource, open_input
from srlive.recon.methods import get_method
from srlive.recon.offline import create_output, finite_json, not_found_warnings
from srlive.recon.offline_methods import SetMethod, resolve_method, stored_raw
from srlive.recon.sim_params import SIMParameters
from srlive.storage.guard import check_output, srlive_attrs
from srlive.storage.omezarr import AcquisitionStore, write_set_chunks

_WORKER_JOBS: dict[str, tuple[SetSource, SetMethod]] = {}  # per worker process, per input
WORKER_LOADS: dict[str, int] = {}  # how often this process built each input's method


@dataclass(frozen=True)
class JobSpec:
    """What a worker needs to rebuild one input's reconstruction (small, picklable)."""

    key: str
    input: str
    method: str
    out: str
    optics_file: str | None
    overrides: dict[str, Any]
    reference: SIMParameters | None = None  # wiener-sim: set 0's estimate
    wiener: float | None = None


def _worker_job(spec: JobSpec) -> tuple[SetSource, SetMethod]:
    """This worker's source and method for ``spec`` (built on its first task, then kept)."""
    job = _WORKER_JOBS.get(spec.key)
    if job is None:
        source, optics = open_input(spec.input, spec.optics_file, spec.overrides)
        method = resolve_method(spec.method, source, optics)
        if method.wiener is not None and spec.reference is not None and spec.wiener is not None:
            method.wiener.use_reference(spec.reference, float(spec.wiener))
        job = _WORKER_JOBS[spec.key] = (source, method)
        WORKER_LOADS[spec.key] = WORKER_LOADS.get(spec.key, 0) + 1
    return job


def run_set(spec: JobSpec, t: int) -> dict[str, Any]:
    """Reconstruct set ``t`` and write its chunks (runs on a worker); its rows for the client."""
    source, method = _worker_job(spec)
    raw, rows = source.read(t)
    result = method(raw, t)
    crcs, files = write_set_chunks(
        spec.out, t, stored_raw(raw, f"{source.source} set {t}"), result.image, result.error
    )
    time_s = rows[-1].get("time_s", math.nan) if rows else math.nan
    return {
        "key": spec.key,
        "t": t,
        "rows": rows,
        "crcs": crcs,
        "files": files,
        "sr_meta": result.sr_meta(t, time_s),
        "entry": result.entry(t),
    }


@dataclass
class _InputJob:
    """One input and its output, on the client."""

    spec: JobSpec
    source: SetSource
    store: AcquisitionStore
    todo: list[int]
    entries: dict[int, dict[str, Any]] = field(default_factory=dict)
    resumed: bool = False


def named_outputs(inputs: Sequence[str | Path], out_dir: Path) -> list[Path]:
    """``out_dir/<input name>.zarr`` for each input (names must differ)."""
    names = [Path(i).name.removesuffix(".zarr").rsplit(".", 1)[0] + ".zarr" for i in inputs]
    if len(set(names)) != len(names):
        raise ValueError("inputs with the same name would share an output; rename one")
    return [out_dir / name for name in names]


def output_paths(inputs: Sequence[str | Path], out: Path) -> list[Path]:
    """One input: ``out``; several: ``out/<input name>.zarr`` for each (names must differ)."""
    return [out] if len(inputs) == 1 else named_outputs(inputs, out)


def made_from(attrs: Mapping[str, Any], input: str | Path, method: str) -> bool:
    """Whether a store's root attributes say it is ``method``'s reconstruction of ``input``."""
    run = attrs.get("run") or {}
    return run.get("reconstructed_from") == str(input) and run.get("method") == method


def reconstruction_state(
    out: str | Path, input: str | Path, method: str
) -> Literal["complete", "interrupted"] | None:
    """``out`` as ``method``'s reconstruction of ``input``: complete, an interrupted job this
    module can resume (pre-sized, not complete), or neither (None)."""
    attrs = srlive_attrs(out)
    if attrs is None or not made_from(attrs, input, method):
        return None
    if attrs.get("complete") is True:
        return "complete"
    return "interrupted" if attrs.get("presized") else None


def _open_job(
    input: Path,
    out: Path,
    method: str,
    optics_file: str | None,
    overrides: Mapping[str, Any],
    overwrite: bool,
) -> _InputJob:
    """Check, resolve and reconstruct set 0 of ``input``; create or resume its output."""
    if not get_method(method).distributed:
        raise ValueError(f"--workers/--scheduler: not supported yet for {method}")
    resume = not overwrite and reconstruction_state(out, input, method) == "interrupted"
    if not resume:
        check_output(out, overwrite=overwrite, inputs=[input])
    if str(out).lower().endswith((".tif", ".tiff")):
        raise ValueError("a distributed reconstruction writes OME-Zarr stores, not TIFF")
    source, optics = open_input(input, optics_file, overrides)
    recon = resolve_method(method, source, optics)
    raw0, rows0 = source.read(0)
    first = recon(raw0, 0)  # fails here, before any output exists, if it cannot be made
    raw0 = stored_raw(raw0, f"{source.source} set 0")
    spec = JobSpec(
        key=uuid.uuid4().hex,
        input=str(input),
        method=method,
        out=str(out),
        optics_file=None if optics_file is None else str(optics_file),
        overrides=dict(overrides),
        reference=first.params if recon.wiener is not None else None,
        wiener=first.wiener,
    )
    if resume:
        store = AcquisitionStore.resume(out)
    else:
        store = create_output(out, source, method, optics, recon, overwrite, source.n_sets)
    done = store.done_sets()
    job = _InputJob(spec, source, store, [t for t in range(source.n_sets) if t not in done])
    job.resumed = resume
    if 0 in job.todo:
        time_s = rows0[-1].get("time_s", math.nan) if rows0 else math.nan
        store.write_set(0, raw0, rows0)
        store.write_sr(0, first.image, first.sr_meta(0, time_s), first.error)
        job.todo.remove(0)
        job.entries[0] = first.entry(0)
    return job


def local_cluster(workers: int, **kwargs: Any) -> Any:
    """A LocalCluster of ``workers`` processes, one task at a time each, sharing the cores.

    Each worker gets ``cores // workers`` BLAS/OpenMP and FFT threads (Dask starts them with
    one BLAS thread; the FFTs would take every core in every worker), and keeps freed memory
    for reuse (:data:`srlive.process_env.HEAP_REUSE`; with Dask's 64 kB trim threshold a set
    took twice as long in a worker as in the main process).
    """
    from distributed import LocalCluster

    threads = str(max(1, (os.cpu_count() or 1) // workers))
    # Dask's nanny copies these from the parent's environment, which wins over its config
    with child_environ({name: threads for name in _THREAD_VARS} | HEAP_REUSE):
        return LocalCluster(
            n_workers=workers, threads_per_worker=1, processes=True, silence_logs=40, **kwargs
        )


_THREAD_VARS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "SRLIVE_FFT_WORKERS")


def _client(workers: int | None, scheduler: str | None) -> tuple[Any, Any]:
    """A Dask client on ``scheduler``, else on a new LocalCluster of ``workers`` processes."""
    from distributed import Client

    if scheduler is not None:
        return Client(scheduler), None
    cluster = local_cluster(workers or 1, dashboard_address=":0")
    return Client(cluster), cluster


def reconstruct_distributed(
    inputs: Sequence[str | Path],
    method: str,
    out: str | Path,
    workers: int | None = None,
    scheduler: str | None = None,
    optics_file: str | Path | None = None,
    optics_overrides: Mapping[str, Any] | None = None,
    overwrite: bool = False,
    progress: bool = False,
) -> dict[str, Any]:
    """Reconstruct every set of every input on a Dask cluster (see the module docstring).

    ``workers``: processes of a new LocalCluster (default 1); ``scheduler``: the address of a
    running one (``tcp://HOST:PORT``), whose workers must see the inputs and outputs at the
    same paths. A rerun of an interrupted job resumes it. Returns a JSON-ready summary.
    """
    if workers is not None and workers < 1:
        raise ValueError("--workers must be at least 1")
    if workers is not None and scheduler is not None:
        raise ValueError("give --workers (a local cluster) or --scheduler, not both")
    paths = [Path(i) for i in inputs]
    outs = output_paths(paths, Path(out))
    if len(paths) > 1:
        Path(out).mkdir(parents=True, exist_ok=True)
    overrides = dict(optics_overrides or {})
    optics_path = None if optics_file is None else str(optics_file)
    jobs: list[_InputJob] = []
    start = time.perf_counter()
    try:
        for input, output in zip(paths, outs, strict=True):
            jobs.append(_open_job(input, output, method, optics_path, overrides, overwrite))
        _run(jobs, workers, scheduler, progress)
    except BaseException:
        for job in jobs:
            job.store.close(complete=False)  # the durable sets stay: a rerun resumes
        raise
    for job in jobs:
        job.store.close(complete=True)
    wall = time.perf_counter() - start
    return _summary(jobs, method, wall, workers, scheduler)


def _run(jobs: list[_InputJob], workers: int | None, scheduler: str | None, progress: bool):
    """Submit the missing sets of every job and record each as it finishes."""
    from distributed import as_completed
    from tqdm import tqdm

    total = sum(job.source.n_sets for job in jobs)
    done = sum(job.source.n_sets - len(job.todo) for job in jobs)
    by_key = {job.spec.key: job for job in jobs}
    todo = [(job, t) for job in jobs for t in job.todo]
    if not todo:
        return
    client, cluster = _client(workers, scheduler)
    try:
        if client.dashboard_link:
            print(f"srlive: Dask dashboard: {client.dashboard_link}", file=sys.stderr)
        specs = {job.spec.key: client.scatter(job.spec, broadcast=True) for job in jobs}
        futures = [
            client.submit(run_set, specs[job.spec.key], t, key=f"set-{job.spec.key}-{t}")
            for job, t in todo
        ]
        disable = None if progress else True
        with tqdm(
            total=total,
            initial=done,
            unit="set",
            desc="reconstruct",
            disable=disable,
            file=sys.stderr,
        ) as bar:
            for future in as_completed(futures):
                result = future.result()
                job = by_key[result["key"]]
                job.store.record_set(
                    result["t"],
                    result["rows"],
                    result["crcs"],
                    result["sr_meta"],
                    result["files"],
                )
                job.entries[result["t"]] = result["entry"]
                future.release()
                bar.update()
    finally:
        client.close()
        if cluster is not None:
            cluster.close()


def _summary(
    jobs: list[_InputJob], method: str, wall: float, workers: int | None, scheduler: str | None
) -> dict[str, Any]:
    outputs = []
    for job in jobs:
        entries = [job.entries[t] for t in sorted(job.entries)]
        outputs.append(
            {
                "input": job.spec.input,
                "output": job.spec.out,
                "n_sets": job.source.n_sets,
                "reconstructed_now": len(entries),
                "resumed": job.resumed,
                "warnings": not_found_warnings(entries),
                "recon_ms_median": float(np.median([e["recon_ms"] for e in entries]))
                if entries
                else None,
            }
        )
    return finite_json(
        {
            "method": method,
            "cluster": scheduler or f"LocalCluster({workers or 1} processes)",
            "outputs": outputs,
            "sets": sum(job.source.n_sets for job in jobs),
            "wall_s": round(wall, 3),
        }
    )
