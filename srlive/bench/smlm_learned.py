"""dl-smlm in `srlive bench smlm`: the learned localiser on the benchmark's frames.

The same held-out frames as the classical fit and Picasso (prior-free structures the model
never saw, the simulator's photoswitching physics rather than training's event model),
scored the same way (:func:`srlive.bench.smlm._scored`: Jaccard, lateral RMSE, errors in
units of each emitter's ideal Cramér-Rao bound), plus the calibration of its predicted
uncertainty (:func:`srlive.learn.smlm_eval.calibration`) and its confidence (the
acquisition against its training ranges). Throughput: frames per second of inference and
post-processing on ``workers`` threads (chunks in parallel, one torch thread each; default
one per core, at most 4), timed like
the others (median of the repeats after a warm-up), with its CPU seconds.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from typing import Any

from simulators.smlm import SMLMFrames
from srlive.learn.smlm_eval import calibration
from srlive.recon.smlm.confidence import smlm_confidence
from srlive.recon.smlm.learned import (
    LearnedLocalizeSettings,
    localize_learned,
    smlm_model,
)
from srlive.recon.smlm.localize import SMLMCamera, SMLMOptics, cpu_cores

Scorer = Callable[[dict[str, Any], SMLMFrames, float], dict[str, Any]]


def learned_status(weights: str) -> str | None:
    """None when the model can be loaded, else why not (one line)."""
    try:
        smlm_model(weights)
    except (FileNotFoundError, ValueError) as exc:
        return f"not run: {exc}"
    return None


def bench_learned(
    burst: SMLMFrames,
    camera: SMLMCamera,
    weights: str,
    repeats: int,
    sigma_nm: float,
    scored: Scorer,
    workers: int = 0,
) -> dict[str, Any]:
    """dl-smlm's scores, calibration, confidence and speed on one benchmark burst."""
    settings = LearnedLocalizeSettings(weights=weights, workers=workers or cpu_cores())
    model = smlm_model(weights)
    optics = SMLMOptics(pixel_nm=burst.pixel_nm)
    localize_learned(burst.frames[:8], optics, camera, settings, model=model)  # warm-up
    seconds, cpu, locs = [], [], None
    for _ in range(max(repeats, 1)):
        start, start_cpu = time.perf_counter(), time.process_time()
        locs = localize_learned(burst.frames, optics, camera, settings, model=model)
        seconds.append(time.perf_counter() - start)
        cpu.append(time.process_time() - start_cpu)
    assert locs is not None
    result = scored(locs.columns, burst, sigma_nm)
    median = statistics.median(seconds)
    result.update(
        calibration=calibration(locs.columns, burst.truth),
        confidence=smlm_confidence(locs, optics, model.info, burst.camera.qe),
        workers=settings.workers,
        seconds=round(median, 3),
        seconds_repeats=[round(s, 3) for s in seconds],
        cpu_seconds=round(statistics.median(cpu), 3),
        frames_per_s=round(len(burst.frames) / median, 1),
    )
    return result
