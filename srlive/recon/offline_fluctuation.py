"""`srlive reconstruct` with a fluctuation method (eSRRF, SOFI): rolling windows of bursts.

The input is one stream of frames: a store's sets (``--modality fluctuation``: 1 x N frames
per set) one after another, or a raw file's frames (one long burst). The stream is cut into
sets of ``step`` frames and set ``t``'s SR image reconstructs the ``window`` frames ending
with it, as :mod:`srlive.recon.fluctuation.method` fixes (the first ``window/step - 1`` sets
have none and are recorded as skipped). Defaults: a store keeps its sets (step = window =
its set size: one SR image per stored burst); a raw file is cut into windows of all its
frames, at most 100 (step = window).

The output is a new store (raw sets of ``step`` frames, SR per window on the ``upscale``
grid, the method's parameters under ``run.fluctuation``, each SR row's window in
``window_first_t``, ``window_first_frame``, ``window_frames``) or an OME-TIFF of the SR
images with the JSON summary beside it. As on the SIM path, everything is checked and the
first SR image computed before the output exists, and a failure before the first SR image
is stored removes the new output.
"""

from __future__ import annotations

import shutil
import sys
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from srlive.io.raw_files import read_raw_frames
from srlive.profiles import load_profile
from srlive.recon.file_input import (
    STORE_FORMAT,
    SetSource,
    is_store_input,
    stored_profile,
    stored_sets,
)
from srlive.recon.fluctuation.method import (
    FluctuationSettings,
    RollingWindow,
    fluctuation_settings,
)
from srlive.recon.methods import describe, get_method
from srlive.recon.offline_methods import stored_raw
from srlive.recon.optics import SIMOptics
from srlive.recon.tiff_output import is_tiff_output, write_sr_tiff
from srlive.storage.noise import NoiseRecord
from srlive.storage.omezarr import DEFAULT_SR_EXTRAS, AcquisitionStore, open_store

RAW_FILE_WINDOW = 100  # a raw file's default window: all its frames, at most this many
WINDOW_COLUMNS = ("window_first_t", "window_first_frame", "window_frames")
ESRRF_ONLY = ("magnification", "radius", "sensitivity", "temporal", "macro_pixel_correction")
SOFI_ONLY = ("balanced",)
FLAG_NAMES = {"macro_pixel_correction": "--no-macro-pixel-correction"}


def _flag(name: str) -> str:
    return FLAG_NAMES.get(name, "--" + name.replace("_", "-"))


def check_method_fields(method: str, given: Mapping[str, Any]) -> None:
    """Refuse parameters ``method`` would ignore (eSRRF's with SOFI, SOFI's with eSRRF)."""
    if not get_method(method).burst:
        raise ValueError(f"{method} is not a fluctuation method ({describe(burst=True)})")
    other = SOFI_ONLY if method == "esrrf" else ESRRF_ONLY
    unused = [_flag(k) for k in other if given.get(k) is not None]
    if unused:
        kind = "SOFI" if method == "esrrf" else "eSRRF"
        raise ValueError(f"{', '.join(unused)}: {kind} options, not used by {method}")


@dataclass
class BurstInput:
    """A stream of frames to reconstruct: its stored sets, camera offset and notes."""

    source: SetSource  # layout (1, n): sets of n frames, one after another
    offset_adu: float
    offset_from: str
    notes: list[str]
    live: dict[str, Any] | None = None  # a live store's fluctuation settings, if any

    def camera(self) -> NoiseRecord:
        """The noise model the output records: the offset used (and the input's gain)."""
        known = self.source.camera
        gain, read = (None, None) if known is None else (known.e_per_adu, known.read_noise_e)
        return NoiseRecord(self.offset_adu, gain, read, self.offset_from)

    @property
    def set_frames(self) -> int:
        return self.source.layout[1]

    @property
    def n_frames(self) -> int:
        return self.source.n_sets * self.set_frames


def _store_bursts(path: Path, overrides: Mapping[str, Any], kind: str) -> BurstInput:
    """A stored burst acquisition (sets of 1 x N frames); SIM stores are refused."""
    reader = open_store(path)
    if reader.n_sets == 0:
        raise ValueError(f"{path} holds no complete set to reconstruct")
    pixel_from = "--pixel-nm" if "pixel_nm" in overrides else "store"
    source = stored_sets(path, reader, overrides.get("pixel_nm", reader.pixel_nm), pixel_from)
    modality = str(source.run.get("modality", ""))
    if source.layout[0] != 1 or modality.startswith("sim"):
        a, p = source.layout
        raise ValueError(
            f"{path} is a {modality or f'{a}x{p}'} store of SIM sets ({a}x{p}); {kind} "
            f"methods need bursts (a store of --modality {kind}, or a raw stack)"
        )
    offset, offset_from, notes = overrides.get("offset_adu"), "--offset-adu", []
    if offset is None and reader.camera is not None:  # the camera's, as recorded
        offset, offset_from = reader.camera.offset_adu, "store"
    if offset is None:  # an older store: its profile's, as the SIM path takes it
        offset, offset_from = (
            SIMOptics.from_profile(*stored_profile(reader.attrs)).offset_adu,
            "profile",
        )
        notes.append(
            f"{path} records no camera noise model (a store older than layout 2): using its "
            f"profile's offset {offset:g} ADU (set it with --offset-adu)"
        )
    return BurstInput(source, float(offset), offset_from, notes, source.run.get("fluctuation"))


def _file_bursts(path: Path, overrides: Mapping[str, Any], kind: str) -> BurstInput:
    """A raw file's frames as one burst (one set of all its frames)."""
    raw = read_raw_frames(path)
    frames = raw.frames
    if raw.n_frames < 2:
        raise ValueError(
            f"{raw.source} holds {raw.n_frames} frame(s); a {kind} method needs a burst"
        )
    profile = SIMOptics.from_profile(load_profile(None))
    notes = []
    pixel, pixel_from = overrides.get("pixel_nm"), "--pixel-nm"
    if pixel is None and raw.pixel_nm is not None:
        pixel, pixel_from = raw.pixel_nm, "file metadata"
    if pixel is None:
        pixel, pixel_from = profile.pixel_nm, "default profile"
        notes.append(
            f"{raw.source}: using the default profile's pixel {pixel:g} nm (set it with --pixel-nm)"
        )
    offset, offset_from = overrides.get("offset_adu"), "--offset-adu"
    if offset is None:
        offset, offset_from = profile.offset_adu, "default profile"
        notes.append(
            f"{raw.source}: using the default profile's camera offset {offset:g} ADU "
            "(set it with --offset-adu)"
        )
    n = int(frames.shape[0])
    source = SetSource(
        source=raw.source,
        format=raw.format,
        shape=(int(frames.shape[1]), int(frames.shape[2])),
        layout=(1, n),
        n_sets=1,
        pixel_nm=float(pixel),
        read=lambda t: (np.asarray(frames), [{"frame": i} for i in range(n)]),
        pixel_nm_from=pixel_from,
    )
    return BurstInput(source, float(offset), offset_from, notes)


def open_bursts(
    path: str | Path, overrides: Mapping[str, Any] | None = None, kind: str = "fluctuation"
) -> BurstInput:
    """A store's bursts or a raw file's frames as one stream (``overrides``: pixel_nm,
    offset_adu; None values: not given). ``kind`` names the methods in messages."""
    overrides = {k: v for k, v in (overrides or {}).items() if v is not None}
    unused = sorted(set(overrides) - {"pixel_nm", "offset_adu"})
    if unused:
        raise ValueError(f"{', '.join(unused)}: SIM optics, not used by the {kind} methods")
    path = Path(path)
    opener = _store_bursts if is_store_input(path) else _file_bursts
    return opener(path, overrides, kind)


def window_settings(
    method: str, bursts: BurstInput, given: Mapping[str, Any]
) -> FluctuationSettings:
    """The settings for ``bursts``: the values given, window and step defaulted to the input.

    A store: step = its set size (when that divides the window given, else the window),
    window = its set size (rounded down to a multiple of the step given). A raw file:
    window = all its frames, at most 100; step = the window.
    """
    given = {k: v for k, v in given.items() if v is not None}
    check_method_fields(method, given)
    window, step = given.pop("window", None), given.pop("step", None)
    is_file = bursts.source.format != STORE_FORMAT
    base = min(bursts.n_frames, RAW_FILE_WINDOW) if is_file else bursts.set_frames
    if step is None:
        step = window if window is not None and (is_file or window % base) else base
    if window is None:
        window = max(1, base // step) * step if step > 0 else base
    settings = fluctuation_settings(method, window=window, step=step, **given)
    if settings.window > bursts.n_frames:
        raise ValueError(
            f"the window ({settings.window} frames) is longer than {bursts.source.source}'s "
            f"{bursts.n_frames} frames"
        )
    return settings


@dataclass
class WindowSet:
    """One set of the re-cut stream and, once its window is full, its SR image."""

    t: int
    raw: np.ndarray
    rows: list[dict[str, Any]]
    image: np.ndarray | None = None
    recon_ms: float = 0.0

    def time_s(self) -> float:
        return float(self.rows[-1].get("time_s", np.nan)) if self.rows else float("nan")

    def sr_meta(self, settings: FluctuationSettings) -> dict[str, Any]:
        """The set's row of the SR table (``window_*``: what its window holds)."""
        meta: dict[str, Any] = {"t": self.t, "time_s": self.time_s()}
        if self.image is None:
            return meta
        first = self.t - settings.sets_per_window + 1
        return meta | {
            "recon_ms": self.recon_ms,
            "window_first_t": first,
            "window_first_frame": first * settings.step,
            "window_frames": settings.window,
        }

    def entry(self, settings: FluctuationSettings) -> dict[str, Any]:
        """The window's entry in the JSON summary."""
        first = self.t - settings.sets_per_window + 1
        return {
            "t": self.t,
            "first_set": first,
            "first_frame": first * settings.step,
            "frames": settings.window,
            "recon_ms": round(self.recon_ms, 2),
        }


def _recut(source: SetSource, step: int) -> Iterator[tuple[np.ndarray, list[dict[str, Any]]]]:
    """The stream of ``source``'s sets, in sets of ``step`` frames (a short tail dropped)."""
    frames: list[np.ndarray] = []
    rows: list[dict[str, Any]] = []
    held = 0
    for t in range(source.n_sets):
        raw, raw_rows = source.read(t)
        frames.append(raw)
        rows.extend(raw_rows or [{} for _ in range(len(raw))])
        held += len(raw)
        if held < step:
            continue
        stream = np.concatenate(frames) if len(frames) > 1 else frames[0]
        cut = (held // step) * step
        for i in range(0, cut, step):
            yield stream[i : i + step], rows[i : i + step]
        frames, rows, held = [stream[cut:]], rows[cut:], held - cut


def _sets(bursts: BurstInput, settings: FluctuationSettings) -> Iterator[WindowSet]:
    """Every set of the re-cut stream, reconstructed once its window is full."""
    window = RollingWindow(settings)
    for t, (raw, rows) in enumerate(_recut(bursts.source, settings.step)):
        item = WindowSet(t, raw, rows)
        burst = window.add(raw)
        if burst is not None:
            start = time.perf_counter()
            item.image = settings.reconstruct(burst, bursts.offset_adu)
            item.recon_ms = (time.perf_counter() - start) * 1e3
        yield item


def _with_first(
    bursts: BurstInput, settings: FluctuationSettings
) -> tuple[list[WindowSet], Iterator[WindowSet]]:
    """The sets up to the first SR image (computed now, before any output) and the rest."""
    sets = _sets(bursts, settings)
    head = []
    for item in sets:
        head.append(item)
        if item.image is not None:
            return head, sets
    raise ValueError(f"{bursts.source.source}: no full window of {settings.window} frames")


def _progress(items: Iterator[WindowSet], total: int, progress: bool) -> Iterator[WindowSet]:
    from tqdm import tqdm

    disable = None if progress else True  # None: tqdm's "off unless a TTY"
    with tqdm(total=total, unit="set", desc="reconstruct", disable=disable, file=sys.stderr) as bar:
        for item in items:
            bar.update()
            yield item


def _write_store(
    out: Path,
    bursts: BurstInput,
    settings: FluctuationSettings,
    sets: Iterator[WindowSet],
    overwrite: bool,
) -> list[dict[str, Any]]:
    """Raw sets and SR windows into a new store; the windows' summary entries."""
    source = bursts.source
    h, w = source.shape
    up = settings.upscale
    writer = AcquisitionStore.create(
        out,
        frame_shape=(h, w),
        pixel_nm=source.pixel_nm,
        n_angles=1,
        n_phases=settings.step,
        sr_shape=(up * h, up * w),
        sr_pixel_nm=source.pixel_nm / up,
        laser_lines=source.laser_lines,
        profile=source.profile,
        run={
            "modality": "fluctuation",  # a raw file's stream: bursts from here on
            **source.run,
            "reconstructed_from": source.source,
            "method": settings.method,
            "fluctuation": settings.parameters(),
            "offset_adu": bursts.offset_adu,
        },
        sr_method=settings.method,
        overwrite=overwrite,
        inputs=[source.source],
        extra_frame_columns=source.extra_columns,
        extra_sr_columns=DEFAULT_SR_EXTRAS + WINDOW_COLUMNS,
        camera=bursts.camera(),
    )
    entries: list[dict[str, Any]] = []
    try:
        with writer:
            for item in sets:
                writer.write_set(
                    item.t, stored_raw(item.raw, f"{source.source} set {item.t}"), item.rows
                )
                if item.image is None:
                    writer.write_sr_skipped(item.t, item.sr_meta(settings))
                    continue
                writer.write_sr(item.t, item.image, item.sr_meta(settings))
                entries.append(item.entry(settings))
    except BaseException:
        if not entries:  # nothing of use was written: leave no output behind
            shutil.rmtree(out, ignore_errors=True)
        raise
    return entries


def _write_tiff(
    out: Path, bursts: BurstInput, settings: FluctuationSettings, sets: Iterator[WindowSet], n: int
) -> list[dict[str, Any]]:
    """The SR windows as one OME-TIFF; their summary entries."""
    entries: list[dict[str, Any]] = []

    def images() -> Iterator[np.ndarray]:
        for item in sets:
            if item.image is not None:
                entries.append(item.entry(settings))
                yield item.image

    h, w = bursts.source.shape
    up = settings.upscale
    write_sr_tiff(out, images(), n, (up * h, up * w), bursts.source.pixel_nm / up)
    return entries


def reconstruct_bursts(
    input: Path,
    method: str,
    out: Path,
    fluctuation: Mapping[str, Any] | None = None,
    optics_overrides: Mapping[str, Any] | None = None,
    overwrite: bool = False,
    progress: bool = False,
) -> dict[str, Any]:
    """Reconstruct the rolling windows of ``input``'s burst stream into ``out``.

    ``fluctuation``: :class:`FluctuationSettings` fields given (None: defaulted to the
    input, see :func:`window_settings`); ``optics_overrides``: ``pixel_nm``/``offset_adu``.
    The caller has checked ``out``. Returns the summary (before its output paths).
    """
    bursts = open_bursts(input, optics_overrides)
    settings = window_settings(method, bursts, fluctuation or {})
    n_sets = bursts.n_frames // settings.step
    n_windows = n_sets - settings.sets_per_window + 1
    notes = list(bursts.notes)
    if tail := bursts.n_frames - n_sets * settings.step:
        notes.append(
            f"the last {tail} frames of {bursts.source.source} do not fill a set of "
            f"{settings.step} and are not reconstructed"
        )
    live_window = (bursts.live or {}).get("window")
    if (fluctuation or {}).get("window") is None and live_window not in (None, settings.window):
        notes.append(
            f"{input} was reconstructed live with windows of {live_window} frames (step "
            f"{(bursts.live or {}).get('step')}); pass --window {live_window} to match it"
        )
    head, rest = _with_first(bursts, settings)  # fails here, before any output exists

    def everything() -> Iterator[WindowSet]:
        yield from head
        yield from rest

    sets = _progress(everything(), n_sets, progress)
    if is_tiff_output(out):
        entries = _write_tiff(out, bursts, settings, sets, n_windows)
    else:
        stored_raw(head[0].raw, f"{bursts.source.source} set 0")  # refused before the store exists
        entries = _write_store(out, bursts, settings, sets, overwrite)
    return {
        "input": str(input),
        "output": str(out),
        "format": bursts.source.format,
        "method": method,
        "parameters": settings.parameters(),
        "upscale": settings.upscale,
        "offset_adu": bursts.offset_adu,
        "offset_adu_from": bursts.offset_from,
        "pixel_nm": bursts.source.pixel_nm,
        "pixel_nm_from": bursts.source.pixel_nm_from,
        "input_frames": bursts.n_frames,
        "n_sets": n_sets,
        "skipped_sets": settings.sets_per_window - 1,
        "windows": entries,
        "sr_images": len(entries),
        "warnings": notes,
    }
