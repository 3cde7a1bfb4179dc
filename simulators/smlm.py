"""SMLM acquisitions with ground truth: photoswitching dyes, a pupil PSF, background, sCMOS.

The dyes are :mod:`simulators.blinking`'s two-state Markov dyes with bleaching, in the
high-power regime of dSTORM: :data:`SMLM_DYE` (an Alexa-647-like dye in a switching buffer)
is driven into a long-lived dark state by the excitation (off-switching grows with its
power), returns thermally and faster under an activation line (405 nm, rate linear in its
power), and bleaches from the on state. At the profile's 140 mW it stays on ~15 ms
(one to two 10 ms frames), emits ~5,000 photons at the camera per switching event (about
4,000 photoelectrons at QE 0.8; Dempsey et al., Nat. Methods 2011, measured ~3,800-5,200
for Alexa 647), has a duty cycle of ~1e-3 without activation (rising about tenfold with 2 mW
of 405 nm) and survives ~15 switching cycles. Photons per frame follow from the exact
on-time within each exposure (exponential on-times cut by the frame boundaries) times the
dye's lognormal brightness; the camera adds shot and read noise.

Each frame renders its on-dyes with :class:`simulators.smlm_psf.PSFRenderer` (a scalar
pupil PSF integrated over the pixels, optionally astigmatic for 3D), adds background
(``background_per_ms_mw · P · exposure`` photons per pixel, modulated by a smooth random
field of relative amplitude ``background_variation``) and goes through
:class:`simulators.camera_model.CameraModel`.

Coordinates of the ground truth: nm from the frame's top-left corner (pixel ``k`` covers
``[k·p, (k+1)·p)``), the convention of ThunderSTORM and of :mod:`srlive.recon.smlm`.
Emitters come as :class:`simulators.fluctuation.Emitters` (origin at the field centre);
the frame covers the field.

:class:`SMLMAcquisition` keeps the dyes' states between calls, so a control loop can change
the activation between bursts; :func:`simulate_smlm` is one burst.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy import ndimage

from simulators.blinking import (
    BLEACHED,
    ON,
    SwitchingDye,
    integrate_exposure,
    jump,
    stationary_states,
)
from simulators.camera_model import CameraModel
from simulators.fluctuation import Emitters
from simulators.smlm_psf import PSFRenderer, PupilOptics

SMLM_DYE = SwitchingDye(
    k_on_thermal_per_s=0.07,
    k_off_dark_per_s=0.5,
    off_per_mw_s=0.47,
    activation_per_mw_s=0.3,
    bleach_per_mw_s=0.031,
    photons_per_ms_mw=2.4,
)
TRUTH_COLUMNS = (
    "frame",
    "emitter",
    "x_nm",
    "y_nm",
    "z_nm",
    "photons",
    "on_fraction",
    "drift_x_nm",
    "drift_y_nm",
)
FRAME_CHUNK = 16  # frames rendered at once


@dataclass
class SMLMFrames:
    """A burst of uint16 frames and its ground truth.

    ``truth`` holds one row per (frame, dye on during it): ``frame`` (index since the
    acquisition began), ``emitter`` (dye index), ``x_nm``/``y_nm`` (where it was imaged, from
    the frame's corner), ``z_nm`` (0 for 2D), ``photons`` (expected photons reaching the
    camera in that frame), ``on_fraction`` (of the exposure) and ``drift_x_nm``/``drift_y_nm``
    (the sample's drift then: ``x_nm − drift_x_nm`` is the dye's place in the sample).
    ``power_mw`` and ``activation_mw`` are per frame.
    """

    frames: np.ndarray
    truth: dict[str, np.ndarray]
    first_frame: int
    pixel_nm: float
    exposure_ms: float
    power_mw: np.ndarray
    activation_mw: np.ndarray
    background_photons: np.ndarray  # (H, W) expected photons per pixel per frame at power_mw[0]
    camera: CameraModel = field(default_factory=CameraModel)
    bleached_fraction: float = 0.0  # of the dyes, at the end of the burst

    def __len__(self) -> int:
        return len(self.frames)

    def truth_in(self, frame: int) -> dict[str, np.ndarray]:
        """The ground-truth rows of one frame."""
        keep = self.truth["frame"] == frame
        return {k: v[keep] for k, v in self.truth.items()}

    def density_per_um2(self) -> float:
        """Mean dyes on per frame per µm² of the field."""
        h, w = self.frames.shape[1:]
        area = h * w * (self.pixel_nm / 1000.0) ** 2
        return len(self.truth["frame"]) / max(len(self.frames), 1) / area


def _smooth_field(shape: tuple[int, int], scale_px: float, rng: np.random.Generator) -> np.ndarray:
    """A smooth random field of mean 1 and unit-free relative variation (rms 1)."""
    noise = ndimage.gaussian_filter(rng.standard_normal(shape), scale_px, mode="wrap")
    noise -= noise.mean()
    return noise / max(float(noise.std()), 1e-12)


class SMLMAcquisition:
    """Photoswitching dyes of one sample, imaged burst after burst with ground truth."""

    def __init__(
        self,
        emitters: Emitters,
        z_nm: np.ndarray | None = None,
        *,
        dye: SwitchingDye = SMLM_DYE,
        optics: PupilOptics | None = None,
        camera: CameraModel | None = None,
        background_per_ms_mw: float = 0.05,
        background_variation: float = 0.2,
        initial: str = "stationary",
        seed: int = 0,
    ) -> None:
        """``initial``: "stationary" (sparse from the start, as after the pump-down) or "on"
        (every dye on, as when the excitation first hits a fresh sample)."""
        if initial not in ("stationary", "on"):
            raise ValueError(f"initial must be 'stationary' or 'on', got {initial!r}")
        if background_per_ms_mw < 0 or not 0 <= background_variation < 1:
            raise ValueError("need background_per_ms_mw >= 0 and 0 <= background_variation < 1")
        self.optics = optics or PupilOptics()
        self.renderer = PSFRenderer(self.optics)
        self.camera = camera or CameraModel()
        self.dye = dye
        p = self.optics.pixel_nm
        self.shape = (
            max(1, round(emitters.field_nm[0] / p)),
            max(1, round(emitters.field_nm[1] / p)),
        )
        self.y_nm = emitters.positions_nm[:, 0].astype(np.float64) + self.shape[0] * p / 2
        self.x_nm = emitters.positions_nm[:, 1].astype(np.float64) + self.shape[1] * p / 2
        n = len(emitters)
        self.z_nm = np.zeros(n) if z_nm is None else np.asarray(z_nm, np.float64)
        if self.z_nm.shape != (n,):
            raise ValueError(f"z_nm needs one value per emitter ({n}), got {self.z_nm.shape}")
        self.brightness = np.asarray(emitters.brightness, np.float32)
        self.background_per_ms_mw = background_per_ms_mw
        self.rng = np.random.default_rng(seed)
        variation = _smooth_field(self.shape, 2000.0 / p, self.rng)  # ~2 µm patches
        self.background_shape = np.clip(1 + background_variation * variation, 0.05, None)
        self.initial = initial
        self.states: np.ndarray | None = None  # drawn under the first frame's light
        self.frames_done = 0

    def __len__(self) -> int:
        return len(self.x_nm)

    def _switch(
        self,
        power: np.ndarray,
        activation: np.ndarray,
        exposure_ms: float,
        gap_ms: float,
        gated: bool,
    ) -> np.ndarray:
        """On-fraction ``(T, N)`` of every dye in each exposure; the states move on."""
        on = np.empty((len(power), len(self)), np.float32)
        if self.states is None:
            first = self.dye.rates(float(power[0]), float(activation[0]))
            self.states = (
                np.full(len(self), ON, np.int8)
                if self.initial == "on"
                else stationary_states(len(self), first, self.rng)
            )
        for t, (p, a) in enumerate(zip(power, activation, strict=True)):
            light = self.dye.rates(float(p), float(a))
            on[t], self.states = integrate_exposure(self.states, exposure_ms, light, self.rng)
            gap = self.dye.rates(0.0) if gated else light
            self.states = jump(self.states, gap_ms, gap, self.rng)
        return on

    def acquire(
        self,
        n_frames: int,
        power_mw: float | np.ndarray = 140.0,
        activation_mw: float | np.ndarray = 0.0,
        exposure_ms: float = 10.0,
        frame_interval_ms: float | None = None,
        gated: bool = True,
        drift_nm: np.ndarray | None = None,
    ) -> SMLMFrames:
        """``n_frames`` frames under the given excitation and activation (per frame or fixed).

        Between exposures (``frame_interval_ms``, default exposure + rolling readout) the
        lasers are off when ``gated`` (thermal return only), else on. ``drift_nm`` ``(T, 2)``
        moves the sample by (y, x) nm in each frame (stage drift).
        """
        if n_frames < 1 or exposure_ms <= 0:
            raise ValueError(f"need n_frames >= 1 and exposure > 0, got {n_frames}, {exposure_ms}")
        power = np.broadcast_to(np.asarray(power_mw, np.float64), (n_frames,)).copy()
        activation = np.broadcast_to(np.asarray(activation_mw, np.float64), (n_frames,)).copy()
        if (
            (power < 0).any()
            or (activation < 0).any()
            or not np.isfinite([power, activation]).all()
        ):
            raise ValueError("powers must be finite and >= 0")
        interval = frame_interval_ms or self.camera.min_frame_interval_ms(
            exposure_ms, self.shape[0]
        )
        if interval < exposure_ms:
            raise ValueError(f"frame interval {interval} ms is shorter than the exposure")
        drift = np.zeros((n_frames, 2)) if drift_nm is None else np.asarray(drift_nm, np.float64)
        if drift.shape != (n_frames, 2) or not np.isfinite(drift).all():
            raise ValueError(f"drift_nm must be finite, shaped ({n_frames}, 2), got {drift.shape}")
        on = self._switch(power, activation, exposure_ms, interval - exposure_ms, gated)
        t_idx, e_idx = np.nonzero(on)
        y_nm = self.y_nm[e_idx] + drift[t_idx, 0]
        x_nm = self.x_nm[e_idx] + drift[t_idx, 1]
        full = self.brightness[e_idx] * np.float32(self.dye.photons_per_ms_mw * exposure_ms)
        photons = full * power[t_idx].astype(np.float32) * on[t_idx, e_idx]
        p = self.optics.pixel_nm
        frames = np.empty((n_frames, *self.shape), np.uint16)
        background = self.background_shape * np.float32(self.background_per_ms_mw * exposure_ms)
        for t0 in range(0, n_frames, FRAME_CHUNK):
            t1 = min(t0 + FRAME_CHUNK, n_frames)
            sel = (t_idx >= t0) & (t_idx < t1)
            expected = self.renderer.render(
                self.shape,
                t_idx[sel] - t0,
                t1 - t0,
                y_nm[sel] / p,
                x_nm[sel] / p,
                photons[sel],
                self.z_nm[e_idx[sel]],
            )
            for c in range(t1 - t0):
                expected[c] += background * np.float32(power[t0 + c])
                self.camera.expose(expected[c], exposure_ms, self.rng, out=frames[t0 + c])
        truth = {
            "frame": (t_idx + self.frames_done).astype(np.int64),
            "emitter": e_idx.astype(np.int64),
            "x_nm": x_nm,
            "y_nm": y_nm,
            "z_nm": self.z_nm[e_idx],
            "photons": photons.astype(np.float64),
            "on_fraction": on[t_idx, e_idx].astype(np.float64),
            "drift_x_nm": drift[t_idx, 1],
            "drift_y_nm": drift[t_idx, 0],
        }
        first = self.frames_done
        self.frames_done += n_frames
        return SMLMFrames(
            frames=frames,
            truth=truth,
            first_frame=first,
            pixel_nm=p,
            exposure_ms=exposure_ms,
            power_mw=power,
            activation_mw=activation,
            background_photons=background * np.float32(power[0]),
            camera=self.camera,
            bleached_fraction=float(np.mean(self.states == BLEACHED)) if len(self) else 0.0,
        )


def simulate_smlm(
    emitters: Emitters,
    n_frames: int,
    power_mw: float = 140.0,
    activation_mw: float = 0.0,
    exposure_ms: float = 10.0,
    *,
    z_nm: np.ndarray | None = None,
    optics: PupilOptics | None = None,
    camera: CameraModel | None = None,
    dye: SwitchingDye = SMLM_DYE,
    background_per_ms_mw: float = 0.05,
    background_variation: float = 0.2,
    seed: int = 0,
    drift_nm: np.ndarray | None = None,
) -> SMLMFrames:
    """One SMLM burst of ``emitters`` (dyes start in their stationary, sparse state)."""
    acquisition = SMLMAcquisition(
        emitters,
        z_nm,
        dye=dye,
        optics=optics,
        camera=camera,
        background_per_ms_mw=background_per_ms_mw,
        background_variation=background_variation,
        seed=seed,
    )
    return acquisition.acquire(n_frames, power_mw, activation_mw, exposure_ms, drift_nm=drift_nm)


def uniform_emitters(
    n: int, field_nm: tuple[float, float], seed: int = 0, brightness_sigma: float = 0.3
) -> Emitters:
    """``n`` dyes placed uniformly over the field (origin at its centre)."""
    rng = np.random.default_rng(seed)
    half = np.asarray(field_nm, np.float64) / 2
    positions = rng.uniform(-half, half, (n, 2)).astype(np.float32)
    brightness = rng.lognormal(-0.5 * brightness_sigma**2, brightness_sigma, n).astype(np.float32)
    return Emitters(positions, brightness, (float(field_nm[0]), float(field_nm[1])))


def stationary_density_per_um2(
    dyes_per_um2: float,
    power_mw: float = 140.0,
    activation_mw: float = 0.0,
    exposure_ms: float = 10.0,
    dye: SwitchingDye = SMLM_DYE,
) -> float:
    """Expected dyes seen per frame per µm² in the stationary state (bleaching aside).

    A dye is seen when it is on at some time in the exposure: on at its start (the
    stationary on-fraction) or switched on during it.
    """
    rates = dye.rates(power_mw, activation_mw)
    on = rates.on_fraction
    return dyes_per_um2 * (on + (1 - on) * -np.expm1(-rates.k_on * exposure_ms))
