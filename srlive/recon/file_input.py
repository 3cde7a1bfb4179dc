"""The inputs ``srlive reconstruct`` takes: an srlive store or any raw SIM frame file.

Both are presented as one :class:`SetSource`: the frame shape, the layout (angles × phases),
the pixel size and a reader of set ``t`` as angle-major frames ``(A·P, H, W)`` with its
frame-table rows. A store's optics take the camera noise model it records (offset, gain)
over its profile's (older stores record none: the profile's values are used, and a note
says so). :func:`raw_file_optics` builds a raw file's :class:`SIMOptics`: the
default profile's values (without its fringe prior: a simulated microscope's pattern is no
prior for another microscope's file), replaced by an optics file, then by the flags given;
the file's own pixel size is used when neither gives one.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from srlive.io.raw_files import RawFrames, group_sets, read_raw_frames
from srlive.profiles import Profile, load_profile
from srlive.recon.optics import SIMOptics
from srlive.storage.guard import is_srlive_store
from srlive.storage.noise import NoiseRecord
from srlive.storage.omezarr import StoreReader, open_store

STORE_FORMAT = "srlive-store"
LAYOUT_KEYS = ("n_angles", "n_phases", "order")
BURST_MODALITIES = ("fluctuation", "smlm")  # stores of bursts (1 x N frames), not SIM sets
# frame-table columns every store has; a stored run's other columns are copied as extras
STANDARD_COLUMNS = frozenset(
    {
        "frame",
        "t",
        "a",
        "p",
        "time_s",
        "exposure_ms",
        "slm_pattern",
        "z_um",
        "x_um",
        "y_um",
        "event",
    }
)


@dataclass
class SetSource:
    """Raw SIM sets to reconstruct, from a store or a file."""

    source: str
    format: str
    shape: tuple[int, int]
    layout: tuple[int, int]
    n_sets: int
    pixel_nm: float
    read: Callable[[int], tuple[np.ndarray, list[dict[str, Any]]]]
    pixel_nm_from: str
    laser_lines: list[int] = field(default_factory=list)
    profile: dict[str, Any] = field(default_factory=dict)
    run: dict[str, Any] = field(default_factory=dict)
    extra_columns: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # what the user should know (warnings)
    camera: NoiseRecord | None = None  # the noise model the input records (a store's)
    camera_from: str = "default profile"  # where the offset and gain used came from


def is_store_input(path: str | Path) -> bool:
    """An srlive store, or any directory holding a Zarr ``zarr.json`` (read as a store)."""
    path = Path(path)
    return is_srlive_store(path) or (path.is_dir() and (path / "zarr.json").exists())


def stored_profile(attrs: Mapping[str, Any]) -> tuple[Profile, int]:
    """The profile and laser line an acquisition was made with (default profile if absent)."""
    stored = attrs.get("profile")
    profile = Profile.model_validate(stored) if stored else load_profile(None)
    line = attrs.get("run", {}).get("laser_line") or profile.defaults.laser_line
    return profile, int(line)


def store_source(
    path: str | Path, optics_file: str | Path | None, overrides: Mapping[str, Any]
) -> tuple[SetSource, SIMOptics]:
    """A stored acquisition and its optics (stored profile, optics file, flags).

    The store's layout and pixel size are what was recorded (``--pixel-nm`` overrides the
    pixel size): ``--angles``/``--phases``/``--order`` are refused, and an optics file's
    layout and pixel size are replaced by the store's.
    """
    given = sorted(k for k in LAYOUT_KEYS if overrides.get(k) is not None)
    if given:
        names = {"n_angles": "--angles", "n_phases": "--phases", "order": "--order"}
        flags = ", ".join(names[k] for k in given)
        raise ValueError(f"{path} is an srlive store, which records its own layout: drop {flags}")
    reader = open_store(path)
    if reader.n_sets == 0:
        raise ValueError(f"{path} holds no complete set to reconstruct")
    attrs = reader.attrs
    profile, line = stored_profile(attrs)
    optics = SIMOptics.from_profile(profile, line)
    if optics_file is not None:
        optics = SIMOptics.from_file(optics_file)
    optics, camera_from, notes = _stored_camera(path, reader, optics, optics_file, overrides)
    optics = optics.with_overrides(pixel_nm=reader.pixel_nm)
    layout = (reader.n_angles, reader.n_phases)
    bursts = attrs.get("run", {}).get("modality") in BURST_MODALITIES
    if layout[1] >= 3 and not bursts:  # a SIM store's sets are what they are
        optics = optics.with_overrides(n_angles=layout[0], n_phases=layout[1], order="angle-major")
    optics = optics.with_overrides(**overrides)
    pixel_from = "--pixel-nm" if overrides.get("pixel_nm") is not None else "store"
    source = stored_sets(path, reader, optics.pixel_nm, pixel_from)
    source.camera_from, source.notes = camera_from, notes
    return source, optics


def _stored_camera(
    path: str | Path,
    reader: StoreReader,
    optics: SIMOptics,
    optics_file: str | Path | None,
    overrides: Mapping[str, Any],
) -> tuple[SIMOptics, str, list[str]]:
    """``optics`` with the store's camera offset and gain (over the profile's, not over an
    optics file's or a flag's); where the offset came from; a note for an older store."""
    given = set(optics.model_fields_set) if optics_file is not None else set()
    given |= {k for k in ("offset_adu", "gain_e_per_adu") if overrides.get(k) is not None}
    camera = reader.camera
    if camera is not None:
        stored = {"offset_adu": camera.offset_adu, "gain_e_per_adu": camera.e_per_adu}
        optics = optics.with_overrides(**{k: v for k, v in stored.items() if k not in given})
    if overrides.get("offset_adu") is not None:
        return optics, "--offset-adu", []
    if "offset_adu" in given:
        return optics, "optics file", []
    if camera is not None:
        return optics, "store", []
    base = "optics file" if optics_file is not None else "profile"
    note = (
        f"{path} records no camera noise model (a store older than layout 2): using the "
        f"{base}'s offset {optics.offset_adu:g} ADU and gain {optics.gain_e_per_adu:g} e-/ADU "
        "(set them with --offset-adu or --optics FILE)"
    )
    return optics, base, [note]


def stored_sets(
    path: str | Path, reader: StoreReader, pixel_nm: float, pixel_nm_from: str
) -> SetSource:
    """The sets of an open store as they were recorded (the layout, the frame table)."""
    attrs = reader.attrs
    return SetSource(
        source=str(path),
        format=STORE_FORMAT,
        shape=(int(attrs["frame_shape"][0]), int(attrs["frame_shape"][1])),
        layout=(reader.n_angles, reader.n_phases),
        n_sets=reader.n_sets,
        pixel_nm=pixel_nm,
        read=_store_reader(reader),
        pixel_nm_from=pixel_nm_from,
        laser_lines=list(attrs.get("laser_lines", [])),
        profile=attrs.get("profile", {}),
        run=attrs.get("run", {}),
        extra_columns=[
            c for c in reader.frames if c not in STANDARD_COLUMNS and not c.startswith("power_mw_")
        ],
        camera=reader.camera,
        camera_from="store" if reader.camera is not None else "profile",
    )


def _store_reader(reader: StoreReader) -> Callable[[int], tuple[np.ndarray, list[dict[str, Any]]]]:
    per_set = reader.n_angles * reader.n_phases
    table = reader.frames

    def read(t: int) -> tuple[np.ndarray, list[dict[str, Any]]]:
        raw = reader.read_set(t)
        rows = [{k: v[t * per_set + i].item() for k, v in table.items()} for i in range(per_set)]
        return raw.reshape(per_set, *raw.shape[-2:]), rows

    return read


DEFAULTED = {"pixel_nm": "--pixel-nm", "na": "--na", "emission_nm": "--emission-nm"}
DEFAULTED |= {"offset_adu": "--offset-adu"}


def raw_file_optics(
    raw: RawFrames, optics_file: str | Path | None, overrides: Mapping[str, Any]
) -> tuple[SIMOptics, str, list[str]]:
    """A raw file's optics, where its pixel size came from and the defaults it relies on.

    Default profile (fringe prior dropped) < optics file < flags; the file's pixel size
    replaces the default when neither the optics file nor ``--pixel-nm`` gives one.
    """
    given = {key for key, value in overrides.items() if value is not None}
    if optics_file is not None:
        base, pixel_from = SIMOptics.from_file(optics_file), "optics file"
    else:
        base = SIMOptics.from_profile(load_profile(None)).model_copy(update={"nominal": None})
        pixel_from = "default profile"
        if raw.pixel_nm is not None:
            base, pixel_from = base.with_overrides(pixel_nm=raw.pixel_nm), "file metadata"
            given.add("pixel_nm")
    if "pixel_nm" in overrides and overrides["pixel_nm"] is not None:
        pixel_from = "--pixel-nm"
    optics = base.with_overrides(**overrides)
    defaulted = [] if optics_file is not None else [k for k in DEFAULTED if k not in given]
    notes = []
    if defaulted:
        values = ", ".join(f"{k} {getattr(optics, k):g}" for k in defaulted)
        flags = ", ".join(DEFAULTED[k] for k in defaulted)
        notes.append(
            f"{raw.source}: using the default profile's {values} (not given; set them with "
            f"{flags} or --optics FILE)"
        )
    return optics, pixel_from, notes


def file_source(
    path: str | Path, optics_file: str | Path | None, overrides: Mapping[str, Any]
) -> tuple[SetSource, SIMOptics]:
    """A raw frame file cut into sets, reordered angle-major, with its optics."""
    raw = read_raw_frames(path)
    optics, pixel_from, notes = raw_file_optics(raw, optics_file, overrides)
    fps = optics.frames_per_set
    sets = group_sets(raw.frames, fps, raw.source)
    order = optics.to_angle_major(np.arange(fps).reshape(fps, 1, 1))[:, 0, 0]

    def read(t: int) -> tuple[np.ndarray, list[dict[str, Any]]]:
        rows = [{"frame": t * fps + int(i)} for i in order]
        return optics.to_angle_major(np.asarray(sets[t])), rows

    given = overrides.get("offset_adu") is not None
    source = SetSource(
        source=raw.source,
        format=raw.format,
        shape=(int(raw.frames.shape[1]), int(raw.frames.shape[2])),
        layout=(optics.n_angles, optics.n_phases),
        n_sets=int(sets.shape[0]),
        pixel_nm=optics.pixel_nm,
        read=read,
        pixel_nm_from=pixel_from,
        notes=notes,
        camera_from="--offset-adu"
        if given
        else "optics file"
        if optics_file
        else "default profile",
    )
    return source, optics


def open_input(
    path: str | Path,
    optics_file: str | Path | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> tuple[SetSource, SIMOptics]:
    """The sets and optics of a store or a raw file (see the module docstring)."""
    overrides = overrides or {}
    if is_store_input(path):
        return store_source(path, optics_file, overrides)
    return file_source(path, optics_file, overrides)
