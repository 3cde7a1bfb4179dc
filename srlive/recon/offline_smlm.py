"""`srlive reconstruct --method localization`: single-molecule localisation of stored bursts.

The input is a store of bursts (``--modality smlm`` or ``fluctuation``: sets of 1 x N
frames, taken one after another) or a raw stack (TIFF, OME-TIFF, MRC, .npy: one burst).
Frames are numbered by their place in that stream. Each set is localised
(:func:`srlive.recon.smlm.localize.localize`) as it is read; then, with enough frames,
drift is estimated by redundant cross-correlation and subtracted, and the localisations
are rendered.

Outputs by ``--out``:

* a store: the raw sets as stored (1 x N per set), ``tables/localizations`` (one row per
  localisation, :data:`srlive.recon.smlm.table.LOCALIZATION_COLUMNS`, drift-corrected),
  ``tables/drift`` (the drift subtracted, per frame, when corrected), and the rendering as
  the ``sr`` image: ``sr/0[t]`` renders every localisation of sets 0..t (the image as it grew);
* ``X.tif``: the final rendering (OME-TIFF) with the summary beside it;
* ``X.csv`` (ThunderSTORM) or ``X.hdf5`` (Picasso, with ``X.yaml``): the localisations.

``--export`` writes the localisations to more of these files besides the output.
The camera's offset, gain and read noise come from the flags, else the store's recorded
noise model, else its profile, else (a raw file) the default profile, else srlive's
sCMOS defaults; the optics (pixel, NA, emission) likewise. Every default taken is named in
the summary's warnings.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from srlive.profiles import Profile, load_profile
from srlive.recon.file_input import STORE_FORMAT
from srlive.recon.offline import stored_raw
from srlive.recon.offline_fluctuation import BurstInput, open_bursts
from srlive.recon.smlm.drift import correct_drift, estimate_drift
from srlive.recon.smlm.export import EXPORT_SUFFIXES, export_format, write_export
from srlive.recon.smlm.localize import SMLMCamera, SMLMOptics, localize
from srlive.recon.smlm.method import SMLMSettings
from srlive.recon.smlm.render import render, render_shape
from srlive.recon.smlm.table import Localizations, concat
from srlive.recon.tiff_output import check_file_output, is_tiff_output, write_sr_tiff
from srlive.storage.noise import NoiseRecord
from srlive.storage.omezarr import DEFAULT_SR_EXTRAS, AcquisitionStore

SMLM_LINE = 640  # the laser line SMLM dyes are imaged with when nothing says which
LOCALIZATION_TABLE = "localizations"
DRIFT_TABLE = "drift"
OPTICS_KEYS = ("pixel_nm", "na", "emission_nm")
CAMERA_KEYS = ("offset_adu", "e_per_adu", "read_noise_e")


@dataclass
class SMLMInput:
    """The burst stream with the optics and camera it was taken with."""

    bursts: BurstInput
    optics: SMLMOptics
    camera: SMLMCamera
    notes: list[str]

    @property
    def source(self) -> str:
        return self.bursts.source.source


def _profile_of(bursts: BurstInput) -> tuple[Profile, int, str]:
    """The profile the input was taken with (a store's) or the default one, and its line."""
    stored = bursts.source.profile
    if stored:
        profile, origin = Profile.model_validate(stored), "the store's profile"
        lines = bursts.source.laser_lines or [profile.defaults.laser_line]
        return profile, int(lines[0]), origin
    profile = load_profile(None)
    line = SMLM_LINE if SMLM_LINE in profile.optics.emission_nm else profile.defaults.laser_line
    return profile, line, "the default profile"


def open_smlm(path: str | Path, overrides: Mapping[str, Any] | None = None) -> SMLMInput:
    """The input stream, optics and camera (``overrides``: pixel_nm, na, emission_nm,
    offset_adu, e_per_adu, read_noise_e; None values: not given)."""
    given = {k: v for k, v in (overrides or {}).items() if v is not None}
    unknown = sorted(set(given) - set(OPTICS_KEYS) - set(CAMERA_KEYS))
    if unknown:
        raise ValueError(f"{', '.join(unknown)}: not used by localization")
    stream: dict[str, Any] = {k: given[k] for k in ("pixel_nm", "offset_adu") if k in given}
    bursts = open_bursts(path, stream, kind="smlm")
    notes = list(bursts.notes)
    profile, line, origin = _profile_of(bursts)
    optics = {
        "pixel_nm": bursts.source.pixel_nm,
        "na": given.get("na", profile.optics.na),
        "emission_nm": given.get("emission_nm", profile.optics.emission_nm.get(line, 670.0)),
    }
    if "emission_nm" not in given:
        notes.append(
            f"{bursts.source.source}: emission {optics['emission_nm']:g} nm (line {line}) from "
            f"{origin} sets the starting PSF width (set it with --emission-nm)"
        )
    recorded = bursts.source.camera or NoiseRecord(bursts.offset_adu)
    camera: dict[str, float] = {"offset_adu": bursts.offset_adu}
    for key, flag in (("e_per_adu", "--gain-e-per-adu"), ("read_noise_e", "--read-noise-e")):
        value, where = given.get(key), flag
        if value is None and getattr(recorded, key) is not None:
            value, where = getattr(recorded, key), "the store's camera record"
        if value is None and getattr(profile.camera, key, None) is not None:
            value, where = getattr(profile.camera, key), origin
        if value is None:
            value, where = SMLMCamera.model_fields[key].default, "srlive's sCMOS default"
            notes.append(f"{bursts.source.source}: camera {key} {value:g} from {where} ({flag})")
        camera[key] = float(value)
    try:
        return SMLMInput(bursts, SMLMOptics(**optics), SMLMCamera(**camera), notes)
    except ValueError as exc:
        raise ValueError(" ".join(str(exc).split())) from None


@dataclass
class LocalizedSet:
    """One set of the stream: where its frames start, how many, its localisations."""

    t: int
    first_frame: int
    n_frames: int
    locs: Localizations


def _localized_sets(data: SMLMInput, settings: SMLMSettings) -> Iterator[LocalizedSet]:
    """Each stored set (or the raw file's one burst), localised (raw frames not kept)."""
    source = data.bursts.source
    first = 0
    for t in range(source.n_sets):
        raw, _ = source.read(t)
        if t == 0:
            stored_raw(raw, f"{source.source} set 0")  # refused before any work is done
        locs = localize(raw, data.optics, data.camera, settings.localize, first_frame=first)
        yield LocalizedSet(t, first, len(raw), locs)
        first += len(raw)


def _progress(items: Iterator[LocalizedSet], total: int, progress: bool) -> Iterator[LocalizedSet]:
    from tqdm import tqdm

    disable = None if progress else True
    with tqdm(total=total, unit="set", desc="localize", disable=disable, file=sys.stderr) as bar:
        for item in items:
            bar.update()
            yield item


def _correct(locs: Localizations, settings: SMLMSettings, notes: list[str]):
    """Drift-corrected localisations and the drift (None when not corrected)."""
    blocks = settings.blocks_for(locs.n_frames)
    if blocks == 0:
        if settings.drift_blocks is None and locs.n_frames > 1:
            notes.append(
                f"drift not corrected: {locs.n_frames} frames are fewer than two blocks of "
                "1000 (set --drift-blocks N to correct anyway)"
            )
        return locs, None
    drift = estimate_drift(locs, blocks, settings.drift_render_nm)
    return correct_drift(locs, drift), drift


def _drift_columns(drift) -> dict[str, np.ndarray]:
    return {
        "frame": np.arange(len(drift.x_nm), dtype=np.int64),
        "x_nm": drift.x_nm.astype(np.float64),
        "y_nm": drift.y_nm.astype(np.float64),
    }


def _growing(locs: Localizations, sets: Sequence[LocalizedSet], settings: SMLMSettings):
    """The rendering after each set: every localisation of sets 0..t (float32 images)."""
    image = np.zeros(render_shape(locs, settings.render_nm), np.float64)
    for item in sets:
        part = locs.in_frames(item.first_frame, item.first_frame + item.n_frames)
        image += render(part, settings.render_nm, settings.render)
        yield image.astype(np.float32)


def _write_store(
    out: Path,
    data: SMLMInput,
    settings: SMLMSettings,
    sets: Sequence[LocalizedSet],
    locs: Localizations,
    drift,
    overwrite: bool,
) -> None:
    source = data.bursts.source
    shape = render_shape(locs, settings.render_nm)
    writer = AcquisitionStore.create(
        out,
        frame_shape=source.shape,
        pixel_nm=source.pixel_nm,
        n_angles=1,
        n_phases=source.layout[1],
        sr_shape=shape,
        sr_pixel_nm=settings.render_nm,
        laser_lines=source.laser_lines,
        profile=source.profile,
        run={
            "modality": "smlm",
            **source.run,
            "reconstructed_from": source.source,
            "method": "localization",
            "smlm": settings.parameters(),
            "optics": data.optics.model_dump(),
            "localizations": len(locs),
            "drift": None if drift is None else drift.summary(),
        },
        sr_method="localization",
        overwrite=overwrite,
        inputs=[source.source],
        extra_frame_columns=source.extra_columns,
        extra_sr_columns=(*DEFAULT_SR_EXTRAS, "localizations"),
        camera=data.bursts.camera(),
    )
    try:
        with writer:
            for item, image in zip(sets, _growing(locs, sets, settings), strict=True):
                raw, rows = source.read(item.t)  # read again: the stream is never held whole
                writer.write_set(item.t, stored_raw(raw, f"{source.source} set {item.t}"), rows)
                n = int(np.count_nonzero(locs["frame"] < item.first_frame + item.n_frames))
                writer.write_sr(item.t, image, {"localizations": n})
            writer.write_table(
                LOCALIZATION_TABLE,
                locs.columns,
                "one row per localisation (frame: place in the input stream; nm from the "
                "frame's corner; drift-corrected when tables/drift exists)",
            )
            if drift is not None:
                writer.write_table(
                    DRIFT_TABLE, _drift_columns(drift), "drift subtracted, per frame"
                )
    except BaseException:
        shutil.rmtree(out, ignore_errors=True)  # a failed localisation leaves no half store
        raise


def check_exports(paths: Sequence[Path], overwrite: bool, inputs: Sequence[Path]) -> None:
    """Refuse export paths of unknown kind or that may not be written, before any work."""
    for path in paths:
        if export_format(path) is None:
            known = ", ".join(EXPORT_SUFFIXES)
            raise ValueError(f"{path}: unknown localisation export (use {known})")
        check_file_output(path, overwrite, list(inputs))
        if export_format(path) == "picasso":
            check_file_output(path.with_suffix(".yaml"), overwrite, [*inputs, path])


def _export(path: Path, locs: Localizations, settings: SMLMSettings) -> list[str]:
    """Write one export; its files are moved into place only once all are complete."""
    info = {
        "Fit method": f"srlive MLE Gaussian ({settings.localize.model})",
        "Box Size": settings.localize.box,
    }
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=path.parent))
    try:
        files = write_export(tmp / path.name, locs, **info)
        targets = [path.with_suffix(f.suffix) for f in files]
        for f, target in zip(files, targets, strict=True):
            os.replace(f, target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return [str(t) for t in targets]


def read_localizations(store: str | Path) -> Localizations:
    """The localisation table of a store ``srlive reconstruct --method localization`` wrote."""
    import zarr

    from srlive.storage.omezarr import open_store
    from srlive.storage.tables import read_table

    reader = open_store(store)
    root = zarr.open_group(str(store), mode="r")
    where = f"{store}/tables/{LOCALIZATION_TABLE}"
    if f"tables/{LOCALIZATION_TABLE}" not in root:
        raise ValueError(f"{store} holds no localisation table (tables/{LOCALIZATION_TABLE})")
    table = root[f"tables/{LOCALIZATION_TABLE}"]
    if not isinstance(table, zarr.Group):
        raise ValueError(f"{where} is not a table")
    columns = read_table(table, None, where)
    h, w = (int(v) for v in reader.attrs["frame_shape"])
    shape = (h, w)
    return Localizations(columns, reader.pixel_nm, shape, reader.n_frames)


def reconstruct_smlm(
    input: Path,
    out: Path,
    settings: SMLMSettings,
    overrides: Mapping[str, Any] | None = None,
    exports: Sequence[Path] = (),
    overwrite: bool = False,
    progress: bool = False,
) -> dict[str, Any]:
    """Localise ``input`` into ``out`` (store, .tif, .csv or .hdf5) and ``exports``.

    The caller has checked ``out`` as a store or TIFF path; export paths are checked here.
    Returns the JSON-ready summary (``warnings``: lines for the user).
    """
    data = open_smlm(input, overrides)
    out_kind = export_format(out)
    check_exports([*exports, *([out] if out_kind else [])], overwrite, [input])
    notes = list(data.notes)
    source = data.bursts.source
    sets = list(_progress(_localized_sets(data, settings), source.n_sets, progress))
    raw_locs = concat([s.locs for s in sets])
    locs, drift = _correct(raw_locs, settings, notes)
    files: list[str] = []
    if out_kind is not None:
        files += _export(out, locs, settings)
    elif is_tiff_output(out):
        image = render(locs, settings.render_nm, settings.render)
        write_sr_tiff(out, [image], 1, image.shape, settings.render_nm)
    else:
        _write_store(out, data, settings, sets, locs, drift, overwrite)
    for path in exports:
        files += _export(Path(path), locs, settings)
    n_frames = locs.n_frames
    return {
        "input": str(input),
        "output": str(out),
        "format": source.format if source.format == STORE_FORMAT else "raw file",
        "method": "localization",
        "parameters": settings.parameters(),
        "optics": data.optics.model_dump(),
        "camera": data.camera.model_dump(),
        "pixel_nm_from": source.pixel_nm_from,
        "offset_adu_from": data.bursts.offset_from,
        "input_frames": n_frames,
        "n_sets": source.n_sets,
        "localizations": len(locs),
        "localizations_per_frame": len(locs) / max(n_frames, 1),
        "median_uncertainty_nm": float(np.median(locs["uncertainty_nm"])) if len(locs) else None,
        "median_photons": float(np.median(locs["photons"])) if len(locs) else None,
        "drift": None if drift is None else drift.summary(),
        "render": {"pixel_nm": settings.render_nm, "kind": settings.render},
        "exports": files,
        "warnings": notes,
    }
