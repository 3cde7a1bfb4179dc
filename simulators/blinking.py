"""Two-state (on/off) blinking with photobleaching: power-dependent rates and exact dynamics.

A dye is ON (emitting), OFF (dark) or BLEACHED (absorbing). Rates (per second):

* ON → OFF: ``k_off = k_off_dark + off_per_mw · P`` (light-driven switching grows with power);
* OFF → ON: ``k_on = k_on_thermal + activation_per_mw · P_activation`` (thermal return plus an
  optional activation laser, e.g. 405 nm);
* ON → BLEACHED: ``k_bleach = bleach_per_mw · P`` (photobleaching from the on state).

The stationary on-fraction under constant light is ``k_on / (k_on + k_off)``. Dynamics are
exact (continuous time, memoryless dwell times): :func:`integrate_exposure` walks each dye's
switching events through an exposure and returns the fraction of it spent on;
:func:`jump` moves states over an interval that is not recorded (readout, darkness) with the
chain's transition matrix.

Default regime (:class:`SwitchingDye`, 10 ms frames): at the profile's 20 mW the mean on-time
is ~29 ms (~3 frames) and the on-fraction 0.24; it runs from ~0.5 at 5 mW to ~0.08 at 80 mW,
just below the world's 100 mW SMLM threshold where sparse blinking takes over. Population
half-life at 20 mW is ~10 s of light (~1000 frames, ~120 on/off cycles and ~1e5 photons per
dye), matching the world's 200 mJ half-dose. This is the duty-cycle / on-time regime the
fluctuation methods are built for: a few to a few tens of percent on, on-times of one to a few
frames, many frames per dye lifetime — SOFI (Dertinger et al., PNAS 2009; with photochromic
proteins, Dedecker et al., PNAS 2012), SRRF (Gustafsson et al., Nat. Commun. 2016) and eSRRF
(Laine et al., Nat. Methods 2023); the same two-state-plus-bleaching model with rates scaled by
the excitation is what the SOFI Simulation Tool uses (Girsault et al., PLoS ONE 2016). The
numbers are this simulator's choice within that regime, not fits to one dye.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from scipy.linalg import expm

OFF, ON, BLEACHED = 0, 1, 2


@dataclass(frozen=True)
class BlinkRates:
    """Transition rates per millisecond under one illumination."""

    k_on: float
    k_off: float
    k_bleach: float = 0.0

    @property
    def on_fraction(self) -> float:
        """Stationary on-fraction, bleaching aside."""
        total = self.k_on + self.k_off
        return self.k_on / total if total > 0 else 1.0


@dataclass(frozen=True)
class SwitchingDye:
    """A blinking dye: rates (per s, per mW) and emission (photons per ms per mW when on)."""

    k_on_thermal_per_s: float = 11.0
    k_off_dark_per_s: float = 2.0
    off_per_mw_s: float = 1.6
    activation_per_mw_s: float = 50.0
    bleach_per_mw_s: float = 0.014
    photons_per_ms_mw: float = 1.5

    def __post_init__(self) -> None:
        for name, value in vars(self).items():
            if not np.isfinite(value) or value < 0:
                raise ValueError(f"SwitchingDye.{name} must be finite and >= 0, got {value}")

    def rates(self, power_mw: float, activation_mw: float = 0.0) -> BlinkRates:
        """Rates per ms under ``power_mw`` of excitation (+ ``activation_mw`` of activation)."""
        if power_mw < 0 or activation_mw < 0:
            raise ValueError(f"powers must be >= 0, got {power_mw} mW and {activation_mw} mW")
        return BlinkRates(
            k_on=(self.k_on_thermal_per_s + self.activation_per_mw_s * activation_mw) / 1000.0,
            k_off=(self.k_off_dark_per_s + self.off_per_mw_s * power_mw) / 1000.0,
            k_bleach=self.bleach_per_mw_s * power_mw / 1000.0,
        )

    def on_fraction(self, power_mw: float, activation_mw: float = 0.0) -> float:
        """Stationary on-fraction under constant light."""
        return self.rates(power_mw, activation_mw).on_fraction

    def mean_on_time_ms(self, power_mw: float) -> float:
        """Mean dwell in the on state (until off-switching or bleaching)."""
        r = self.rates(power_mw)
        total = r.k_off + r.k_bleach
        return float("inf") if total == 0 else 1.0 / total


def stationary_states(n: int, rates: BlinkRates, rng: np.random.Generator) -> np.ndarray:
    """``n`` dyes drawn from the stationary on/off distribution (int8 OFF/ON)."""
    return (rng.random(n) < rates.on_fraction).astype(np.int8)


def integrate_exposure(
    states: np.ndarray, duration_ms: float, rates: BlinkRates, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Fraction of ``duration_ms`` each dye spends on, and the states at its end.

    Exact event-by-event simulation: each round draws the next dwell of every dye still
    inside the interval; dyes whose dwell outlasts the interval leave the loop.
    """
    if duration_ms <= 0:
        raise ValueError(f"exposure must be > 0 ms, got {duration_ms}")
    states = np.array(states, np.int8)
    on_time = np.zeros(states.size, np.float64)
    idx = np.flatnonzero(states != BLEACHED)
    remaining = np.full(idx.size, float(duration_ms))
    leave_on = rates.k_off + rates.k_bleach
    while idx.size:
        current = states[idx]
        on = current == ON
        rate = np.where(on, leave_on, rates.k_on)
        with np.errstate(divide="ignore"):
            dwell = rng.standard_exponential(idx.size) / rate
        switched = dwell < remaining
        step = np.minimum(dwell, remaining)
        on_time[idx[on]] += step[on]
        turned_off = on & switched
        bleached = turned_off & (rng.random(idx.size) * leave_on < rates.k_bleach)
        current[switched & ~on] = ON
        current[turned_off] = OFF
        current[bleached] = BLEACHED
        states[idx] = current
        keep = switched & ~bleached
        idx, remaining = idx[keep], (remaining - step)[keep]
    return (on_time / duration_ms).astype(np.float32), states


@lru_cache(maxsize=64)
def transition_matrix(duration_ms: float, rates: BlinkRates) -> np.ndarray:
    """P[i, j] = probability of state j after ``duration_ms`` starting in state i."""
    q = np.array(
        [
            [-rates.k_on, rates.k_on, 0.0],
            [rates.k_off, -(rates.k_off + rates.k_bleach), rates.k_bleach],
            [0.0, 0.0, 0.0],
        ]
    )
    matrix = expm(q * max(duration_ms, 0.0))
    matrix.setflags(write=False)  # cached: shared between callers
    return matrix


def jump(
    states: np.ndarray, duration_ms: float, rates: BlinkRates, rng: np.random.Generator
) -> np.ndarray:
    """States after an unrecorded interval (readout gap, darkness), drawn exactly."""
    states = np.asarray(states, np.int8)
    if duration_ms <= 0 or states.size == 0:
        return states.copy()
    cumulative = np.cumsum(transition_matrix(duration_ms, rates), axis=1)
    u = rng.random(states.size)
    new = (u[:, None] > cumulative[states][:, :2]).sum(axis=1).astype(np.int8)
    new[states == BLEACHED] = BLEACHED
    return new
