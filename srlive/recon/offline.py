"""`srlive reconstruct`: reconstruct a stored acquisition or any raw SIM file.

(The fluctuation methods, eSRRF and SOFI, reconstruct rolling windows of bursts instead:
:mod:`srlive.recon.offline_fluctuation`; :func:`reconstruct_input` runs both.)

The input is an srlive store or a raw frame file (TIFF, OME-TIFF, ImageJ, MRC, ``.npy``;
see :mod:`srlive.recon.file_input`); the output is a new store (raw and SR per set, the
estimated pattern per set in its SR table) or, for ``--out X.tif``, an OME-TIFF of the SR
images with the summary beside it (:mod:`srlive.recon.tiff_output`).

``wiener-sim`` estimates the pattern blind on set 0 and re-estimates every later set next
to set 0's estimate (which stays the fallback for an angle not found), with set 0's Wiener
parameter: each set's result depends on set 0 and itself only, so sets can be reconstructed
in any order and by any process (:mod:`srlive.recon.distributed`) with the same result.

The output is checked before any work, and the method resolved and the first SR image
computed before the output is created, so a bad method, weights file or input leaves
``out`` as it was; a failure before the first SR image is stored removes the new output.

The camera offset subtracted is the one the input records (a store's noise model), else
the profile's (the summary's ``camera`` says which, and a warning says so for a store
that records none); the output records the noise model it was reconstructed with.
"""

from __future__ import annotations

import math
import shutil
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from srlive.recon.file_input import SetSource, open_input
from srlive.recon.methods import get_method
from srlive.recon.offline_methods import (
    SetMethod,
    SetResult,
    estimate_set_pattern,
    resolve_method,
    stored_raw,
)
from srlive.recon.optics import SIMOptics
from srlive.recon.sim_params import SIMParameters, pattern_columns
from srlive.recon.tiff_output import (
    check_file_output,
    check_tiff_output,
    is_tiff_output,
    sidecar_path,
    write_json,
    write_sr_tiff,
)
from srlive.storage.guard import check_output
from srlive.storage.noise import NoiseRecord
from srlive.storage.omezarr import DEFAULT_SR_EXTRAS, AcquisitionStore

MAX_LISTED_SETS = 10  # sets named in one "not found" warning
_First = tuple[np.ndarray, list[dict[str, Any]], SetResult]


def _sets(
    source: SetSource, recon: SetMethod, first: _First, progress: bool
) -> Iterator[tuple[int, np.ndarray, list[dict[str, Any]], SetResult]]:
    """Every set in order, reconstructed (set 0 already was), with a progress bar.

    The bar is drawn on stderr when it is a terminal (never into logs or pipes).
    """
    from tqdm import tqdm

    disable = None if progress else True  # None: tqdm's "off unless a TTY"
    with tqdm(
        total=source.n_sets, unit="set", desc="reconstruct", disable=disable, file=sys.stderr
    ) as bar:
        for t in range(source.n_sets):
            if t == 0:
                raw, rows, result = first
            else:
                raw, rows = source.read(t)
                result = recon(raw, t)
            bar.update()
            yield t, raw, rows, result


def output_camera(source: SetSource, optics: SIMOptics) -> NoiseRecord:
    """The noise model an output records: the offset and gain its reconstruction used."""
    read_noise = None if source.camera is None else source.camera.read_noise_e
    return NoiseRecord(optics.offset_adu, optics.gain_e_per_adu, read_noise, source.camera_from)


def create_output(
    out: Path,
    source: SetSource,
    method: str,
    optics: SIMOptics,
    recon: SetMethod,
    overwrite: bool,
    n_sets: int | None = None,
) -> AcquisitionStore:
    """The new output store of ``method`` over ``source`` (``n_sets``: pre-sized, for sets
    written in any order by other processes)."""
    h, w = source.shape
    up = recon.upscale
    pattern = pattern_columns(*source.layout) if recon.patterned else ()
    return AcquisitionStore.create(
        out,
        frame_shape=(h, w),
        pixel_nm=source.pixel_nm,
        n_angles=source.layout[0],
        n_phases=source.layout[1],
        sr_shape=(up * h, up * w),
        sr_pixel_nm=source.pixel_nm / up,
        laser_lines=source.laser_lines,
        profile=source.profile,
        run={
            **source.run,
            "reconstructed_from": source.source,
            "method": method,
            "optics": optics.model_dump(mode="json"),
        },
        sr_method=method,
        overwrite=overwrite,
        inputs=[source.source],  # never written over (or into) the input it reads
        extra_frame_columns=source.extra_columns,
        extra_sr_columns=DEFAULT_SR_EXTRAS + pattern,
        n_sets=n_sets,
        camera=output_camera(source, optics),
        sr_error=recon.error_map,
    )


def _write_store(
    out: Path,
    source: SetSource,
    method: str,
    optics: SIMOptics,
    recon: SetMethod,
    sets: Iterator[tuple[int, np.ndarray, list[dict[str, Any]], SetResult]],
    overwrite: bool,
) -> list[dict[str, Any]]:
    """Write raw and SR of every set into a new store; the sets' summary entries."""
    writer = create_output(out, source, method, optics, recon, overwrite)
    entries: list[dict[str, Any]] = []
    try:
        with writer:
            for t, raw, rows, result in sets:
                writer.write_set(t, stored_raw(raw, f"{source.source} set {t}"), rows)
                time_s = rows[-1].get("time_s", math.nan) if rows else math.nan
                writer.write_sr(t, result.image, result.sr_meta(t, time_s), result.error)
                entries.append(result.entry(t))
    except BaseException:
        if not entries:  # nothing of use was written: leave no output behind
            shutil.rmtree(out, ignore_errors=True)
        raise
    return entries


def _write_tiff(
    out: Path,
    source: SetSource,
    recon: SetMethod,
    sets: Iterator[tuple[int, np.ndarray, list[dict[str, Any]], SetResult]],
) -> list[dict[str, Any]]:
    """Write the SR images as one OME-TIFF; the sets' summary entries."""
    entries: list[dict[str, Any]] = []

    def images() -> Iterator[np.ndarray]:
        for t, _raw, _rows, result in sets:
            entries.append(result.entry(t))
            yield result.image

    h, w, up = *source.shape, recon.upscale
    write_sr_tiff(out, images(), source.n_sets, (up * h, up * w), source.pixel_nm / up)
    return entries


def not_found_warnings(sets: list[dict[str, Any]]) -> list[str]:
    """One line per angle (and fallback) that was not found in some sets."""
    missing: dict[tuple[int, str], list[int]] = {}
    for entry in sets:
        for a, angle in enumerate(entry.get("pattern") or []):
            if not angle["found"]:
                missing.setdefault((a, angle["source"]), []).append(int(entry["t"]))
    used = {
        "none": "widefield only",
        "previous": "the previous set's pattern used",
        "nominal": "the nominal pattern used",
    }
    lines = []
    for (a, source), ts in sorted(missing.items()):
        listed = ", ".join(str(t) for t in ts[:MAX_LISTED_SETS])
        more = f", … ({len(ts)} sets)" if len(ts) > MAX_LISTED_SETS else ""
        noun = "set" if len(ts) == 1 else "sets"
        lines.append(f"angle {a} not found in {noun} {listed}{more} ({used.get(source, source)})")
    return lines


def finite_json(obj: Any) -> Any:
    """``obj`` with every NaN/inf float replaced by None (strict JSON)."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, Mapping):
        return {k: finite_json(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [finite_json(v) for v in obj]
    return obj


def _check_outputs(input: Path, out: Path, plot: Path | None, overwrite: bool) -> None:
    """Refuse outputs that may not be written, before any work."""
    if is_tiff_output(out):
        check_tiff_output(out, overwrite=overwrite, inputs=[input])
    else:
        check_output(out, overwrite=overwrite, inputs=[input])  # claimed at create
    if plot is not None:
        if plot.suffix.lower() != ".png":
            raise ValueError(f"--plot writes a PNG image: give a .png path, not {plot}")
        check_file_output(plot, overwrite, [input, out])


def _plot_params(
    first: SetResult, raw: np.ndarray, source: SetSource, optics: SIMOptics
) -> SIMParameters:
    """Set 0's pattern for the figure (estimated here for methods that do not estimate it)."""
    if first.params is not None:
        return first.params
    if source.layout[1] < 3:
        raise ValueError(f"--plot needs SIM sets of 3 or more phases; {source.source} has none")
    return estimate_set_pattern(raw, optics)


def reconstruct_input(
    input: str | Path,
    method: str,
    out: str | Path,
    optics_overrides: Mapping[str, Any] | None = None,
    optics_file: str | Path | None = None,
    overwrite: bool = False,
    progress: bool = False,
    plot: str | Path | None = None,
    fluctuation: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Reconstruct every set of a store or raw file into ``out`` (a store, or ``.tif``).

    ``optics_overrides`` are :class:`SIMOptics` fields (plus ``period_nm``/``angles_deg``
    of the nominal pattern; None: not given) over the optics file over the default (a
    store: its profile; a raw file: the default profile without its fringe prior, and the
    file's pixel size when it has one). ``plot`` writes set 0's spectra and carriers (PNG).
    A fluctuation method (``esrrf``, ``sofi2``-``4``) reconstructs rolling windows instead
    (:func:`srlive.recon.offline_fluctuation.reconstruct_bursts`): ``fluctuation`` holds its
    settings given (window, step, ...; None: defaulted to the input), and of the optics only
    ``pixel_nm`` and ``offset_adu`` apply. Returns the JSON-ready summary (``warnings``:
    lines for the user).
    """
    input, out = Path(input), Path(out)
    plot = None if plot is None else Path(plot)
    if get_method(method).burst:
        if plot is not None or optics_file is not None:
            raise ValueError(f"--plot and --optics are for the SIM methods, not {method}")
        _check_outputs(input, out, None, overwrite)
        from srlive.recon.offline_fluctuation import reconstruct_bursts

        summary = finite_json(
            reconstruct_bursts(
                input, method, out, fluctuation, optics_overrides, overwrite, progress
            )
        )
        return _finish_summary(summary, out)
    if fluctuation and any(v is not None for v in fluctuation.values()):
        names = ", ".join(k for k, v in fluctuation.items() if v is not None)
        raise ValueError(f"{names}: fluctuation settings, not used by {method}")
    _check_outputs(input, out, plot, overwrite)
    source, optics = open_input(input, optics_file, optics_overrides)
    recon = resolve_method(method, source, optics)
    raw, rows = source.read(0)
    first = recon(raw, 0)  # fails here, before any output exists, if it cannot be made
    plot_params = None if plot is None else _plot_params(first, raw, source, optics)
    sets = _sets(source, recon, (raw, rows, first), progress)
    if is_tiff_output(out):
        entries = _write_tiff(out, source, recon, sets)
    else:
        stored_raw(raw, f"{source.source} set 0")  # refused before the store exists
        entries = _write_store(out, source, method, optics, recon, sets, overwrite)
    if plot is not None and plot_params is not None:
        from srlive.recon.plot import plot_pattern

        plot_pattern(plot, raw, plot_params, optics)
    summary = finite_json(
        {
            "input": str(input),
            "output": str(out),
            "format": source.format,
            "method": method,
            "optics": optics.model_dump(mode="json"),
            "camera": output_camera(source, optics).to_attrs(),
            "pixel_nm_from": source.pixel_nm_from,
            "sets": entries,
            "sr_images": len(entries),
            "n_sets": source.n_sets,
            "warnings": [*source.notes, *not_found_warnings(entries)],
        }
    )
    if plot is not None:
        summary["plot"] = str(plot)
    return _finish_summary(summary, out, recon.error_map)


def _finish_summary(summary: dict[str, Any], out: Path, error_map: bool = False) -> dict[str, Any]:
    """Where the SR images (and their error maps) are in ``out``; a TIFF output's summary
    written beside it."""
    if is_tiff_output(out):
        summary["summary_path"] = str(sidecar_path(out))
        write_json(sidecar_path(out), summary)
    else:
        summary["sr_path"] = "sr/0"
        if error_map:
            summary["sr_error_path"] = "sr_error/0"
    return summary


def reconstruct_store(
    store: str | Path, method: str, out: str | Path, overwrite: bool = False
) -> dict[str, Any]:
    """Copy the raw data of ``store`` to ``out`` with ``method``'s SR image for every set."""
    return reconstruct_input(store, method, out, overwrite=overwrite)
