"""The learned parameter optimizer: laser power, exposure (and sim3/sim9) per timepoint.

For one sample (one stage position and channel) it learns online

* **brightness and bleaching**: the peak signal per unit light (e⁻ per mW·ms) measured in
  every set, fitted as ``b0·exp(−k·dose)`` against the dose the sample had received
  (:func:`srlive.recon.set_metrics.fit_bleaching`), with the fit's standard errors;
* **quality**: a Gaussian process (BoTorch ``SingleTaskGP``) of the measured quality proxy
  (expected SR SSIM from the set's SNR through the prior's quality curve) over
  ``(log10 delivered signal, log10 power, log10 exposure)`` per modality. Its prior mean is
  the simulator-learned curve and its hyperparameters come from the shipped prior, so the
  first decisions are already sensible (warm start); the GP corrects the curve where this
  sample differs (saturation, blinking at high power, …).

Each decision is a Thompson sample: brightness, bleaching rate and the GP residual are drawn
from their posteriors, every candidate setting within the limits (and the remaining dose
budget) gets a sampled quality, and the goal picks one:

* ``min-dose-at-quality``: the least dose whose sampled quality reaches the target;
* ``quality-within-budget``: the best sampled quality whose dose fits the remaining budget
  spread over the remaining timepoints;
* ``max-rate-at-quality``: the shortest set whose sampled quality reaches the target.

Where nothing reaches the target, the least dose within 0.02 of the best sampled quality.
Because the signal per unit light falls as the sample bleaches, the chosen power rises over
a timelapse while the delivered signal (the operating point) stays where the goal wants it.

That compensation is bounded by a **fluorescence reserve** (default 10 % of the sample's
initial brightness, from the fitted bleaching rate): no timepoint takes the sample below it,
a sample at its reserve gets the least light, and where the target cannot be reached (or
under ``quality-within-budget``) the dose per timepoint is paced so that repeating it for
the remaining timepoints keeps the reserve. Without it, a sample that bleaches faster than
light can compensate is driven to the power limit and burnt out (more light, faster
bleaching, more light), and a burnt-out sample keeps getting the most light there is.

Two **policies**:

* ``adaptive`` (default): a decision every timepoint as above; the power follows the
  bleaching, so the raw settings keep moving by design while the operating point holds.
* ``steady``: the same decisions for the first ``steady_after`` timepoints (learning), then
  one setting planned for the rest of the timelapse and held — what a quantitative
  timelapse needs (intensities comparable across time). The plan predicts, for every
  candidate, the quality of each remaining timepoint as the sample bleaches under that
  setting (fitted brightness and bleaching, the quality curve and the GP's correction) and
  picks the one with the most timepoints at the target (a timepoint past the fluorescence
  reserve does not count), the least dose among near-equals. Safety still overrides a held
  setting (a dose budget that would be exceeded, the reserve).
"""

from __future__ import annotations

import math
import time
import warnings
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from srlive.optimize.goals import DEFAULT_TARGET_QUALITY, choose
from srlive.optimize.prior import Prior
from srlive.optimize.search_space import (  # re-exported: the optimizer's vocabulary
    Observation,
    OptimizerError,
    SearchSpace,
)

GOALS = ("quality-within-budget", "min-dose-at-quality", "max-rate-at-quality")
POLICIES = ("adaptive", "steady")
DEFAULT_STEADY_AFTER = 15  # learning timepoints before a steady policy fixes its setting
STEADY_HORIZON = 100  # timepoints planned for when the timelapse length is unknown
STEADY_NEAR = 0.98  # candidates within 2 % of the most good timepoints count as equals
WINDOW = 80  # most recent observations the GP is conditioned on (bounded decision time)
EXPLORE_SETS = 10  # Thompson sampling for this many sets, then the lower confidence bound
LCB_SDS = 1.0
MIN_FIT_SNR = 2.0  # sets below this peak SNR measure the noise floor, not the brightness
DEFAULT_FLUORESCENCE_RESERVE = 0.1  # of the initial brightness, kept to the last timepoint

__all__ = [
    "DEFAULT_TARGET_QUALITY",
    "GOALS",
    "POLICIES", "Observation", "Optimizer", "OptimizerError", "SearchSpace"]


@dataclass
class Optimizer:
    """Online optimizer for one sample; see the module docstring."""

    space: SearchSpace
    prior: Prior
    goal: str = "quality-within-budget"
    target_quality: float | None = None
    dose_budget_mj: float | None = None
    n_timepoints: int | None = None
    seed: int = 0
    fluorescence_reserve: float = DEFAULT_FLUORESCENCE_RESERVE
    policy: str = "adaptive"
    steady_after: int = DEFAULT_STEADY_AFTER
    observations: list[Observation] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.goal not in GOALS:
            raise OptimizerError(f"unknown optimizer goal {self.goal!r} (choose from {GOALS})")
        if self.policy not in POLICIES:
            raise OptimizerError(f"unknown optimizer policy {self.policy!r} (choose {POLICIES})")
        if self.steady_after < 1:
            raise OptimizerError("steady_after must be at least 1 timepoint")
        self._held: tuple[int, dict[str, Any]] | None = None  # grid index, plan details
        for modality in self.space.modalities:
            self.prior.curve(modality)  # every modality needs a quality curve
        if self.target_quality is None:
            self.target_quality = DEFAULT_TARGET_QUALITY
        self._rng = np.random.default_rng(self.seed)
        self._torch_rng_seed = self.seed
        self._grid = self.space.candidates()
        self._dose_mj = 0.0
        import torch  # imported here so that the first decision pays no import cost

        self._torch = torch
        torch.manual_seed(self.seed)

    def warm_up(self) -> None:
        """Build and query one small GP so the first real decision pays no start-up cost."""
        name = self.space.modalities[0]
        saved = self.observations
        self.observations = [
            Observation(0, 1.0, 1.0, name, 0.0, {"signal_e": 10.0, "brightness": 10.0}, 0.5)
        ]
        try:
            self._gp_residual(name, np.zeros((4, 2)), 1)
        finally:
            self.observations = saved

    # --- learning ------------------------------------------------------------------
    def quality_proxy(self, metrics: dict[str, Any], modality: str) -> float:
        """Expected SR SSIM of a set from its measured SNR; saturation costs quality."""
        q = float(self.prior.curve(modality)(metrics["snr"]))
        return q * (1.0 - min(1.0, 5.0 * float(metrics.get("saturated_fraction", 0.0))))

    def observe(
        self,
        t: int,
        power_mw: float,
        exposure_ms: float,
        modality: str,
        metrics: dict[str, Any],
        dose_before_mj: float,
    ) -> Observation:
        """Record a set's metrics (its dose counts from then on)."""
        quality = self.quality_proxy(metrics, modality)
        obs = Observation(t, power_mw, exposure_ms, modality, dose_before_mj, metrics, quality)
        self.observations.append(obs)
        frames = self.space.frames.get(modality, 1)
        self._dose_mj = dose_before_mj + power_mw * exposure_ms * frames / 1000.0
        return obs

    @property
    def dose_mj(self) -> float:
        return self._dose_mj

    def bleaching(self) -> dict[str, float]:
        """Brightness fit: k (/mJ) and log b0 with standard errors (prior k until 3 sets)."""
        measured = [o for o in self.observations if o.metrics.get("brightness", 0) > 0]
        # a set at the noise floor measures noise / light, not brightness: fit the sets
        # with a significant signal where there are any
        obs = [o for o in measured if o.metrics.get("snr", math.inf) >= MIN_FIT_SNR] or measured
        if not obs:
            return {"k": self.prior.bleach_k_per_mj, "k_se": 0.0, "log_b0": math.nan, "b_se": 0.0}
        d = np.array([o.dose_before_mj for o in obs])
        logb = np.log([o.metrics["brightness"] for o in obs])
        if len(obs) < 3 or np.ptp(d) <= 0:
            k = self.prior.bleach_k_per_mj
            log_b0 = float(np.mean(logb + k * d))
            return {"k": k, "k_se": k, "log_b0": log_b0, "b_se": 0.3}
        (slope, intercept), cov = np.polyfit(d, logb, 1, cov=True)
        k = max(-float(slope), 0.0)
        return {
            "k": k,
            "k_se": float(math.sqrt(max(cov[0, 0], 0.0))),
            "log_b0": float(intercept) if k > 0 else float(np.mean(logb)),
            "b_se": float(math.sqrt(max(cov[1, 1], 0.0))),
        }

    def _background_rate(self) -> float:
        rates = [
            o.metrics.get("background_e", 0.0) / (o.power_mw * o.exposure_ms)
            for o in self.observations[-WINDOW:]
        ]
        return float(np.median(rates)) if rates else 0.0

    def _features(self, signal: np.ndarray, power: np.ndarray, exposure: np.ndarray) -> np.ndarray:
        scale = self.prior.lengthscale_decades
        del exposure  # at equal delivered signal, exposure matters only through power here
        return np.stack(
            [np.log10(np.maximum(signal, 1e-3)) / scale, np.log10(power) / 1.5], axis=-1
        )

    def _prior_mean(
        self, modality: str, signal: np.ndarray, exposure_power: np.ndarray
    ) -> np.ndarray:
        background = self._background_rate() * exposure_power
        variance = np.maximum(signal, 0) + background + 1.6**2
        snr = signal / np.sqrt(variance)
        return np.asarray(self.prior.curve(modality)(snr), np.float64)

    def _gp_residual(self, modality: str, x_new: np.ndarray, n_samples: int) -> tuple:
        """Posterior mean, sd and ``n_samples`` joint samples of the GP residual at x_new."""
        torch = self._torch
        obs = [o for o in self.observations[-WINDOW:] if o.modality == modality]
        if not obs:
            sd = np.full(len(x_new), self.prior.prior_sd)
            z = self._rng.standard_normal((n_samples, 1)) * self.prior.prior_sd
            return np.zeros(len(x_new)), sd, np.repeat(z, len(x_new), axis=1)
        from botorch.models import SingleTaskGP
        from gpytorch.kernels import MaternKernel, ScaleKernel
        from linear_operator.utils.warnings import NumericalWarning

        signal = np.array([o.metrics["signal_e"] for o in obs])
        power = np.array([o.power_mw for o in obs])
        exposure = np.array([o.exposure_ms for o in obs])
        y = np.array([o.quality for o in obs]) - self._prior_mean(
            modality, signal, power * exposure
        )
        x_train = torch.as_tensor(self._features(signal, power, exposure), dtype=torch.float64)
        y_train = torch.as_tensor(y[:, None], dtype=torch.float64)
        noise = torch.full_like(y_train, self.prior.noise_sd**2)
        kernel = ScaleKernel(MaternKernel(nu=2.5))
        kernel.base_kernel.lengthscale = 1.0
        kernel.outputscale = self.prior.prior_sd**2
        model = SingleTaskGP(x_train, y_train, train_Yvar=noise, covar_module=kernel)
        model.mean_module.constant.data.fill_(0.0)
        model.eval()
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore", NumericalWarning)  # jitter on near-equal candidates
            post = model.posterior(torch.as_tensor(x_new, dtype=torch.float64))
            mean = post.mean.squeeze(-1).numpy()
            sd = post.variance.clamp_min(0).sqrt().squeeze(-1).numpy()
            samples = (
                post.rsample(torch.Size([n_samples])).squeeze(-1).numpy()
                if n_samples
                else np.zeros((0, len(x_new)))
            )
        return mean, sd, samples

    # --- deciding ------------------------------------------------------------------
    def decide(
        self,
        t_next: int,
        remaining_budget_mj: float | None = None,
        remaining_timepoints: int | None = None,
    ) -> dict[str, Any]:
        """The settings for timepoint ``t_next`` and why (JSON-ready)."""
        start = time.perf_counter()
        grid = self._grid
        bleach = self.bleaching()
        allowed = np.ones(grid["dose"].shape, bool)
        if remaining_budget_mj is not None:
            allowed &= grid["dose"] <= remaining_budget_mj + 1e-12
        per_timepoint = None
        if self.goal == "quality-within-budget" and remaining_budget_mj is not None:
            left = max(1, remaining_timepoints or 1)
            per_timepoint = remaining_budget_mj / left
            paced = allowed & (grid["dose"] <= per_timepoint)
            allowed = paced if paced.any() else allowed
        if not allowed.any():
            return self._record(
                t_next, None, "dose budget exhausted: no setting fits", start, bleach, {}
            )
        step_cap, pace_cap = self.reserve_caps_mj(bleach["k"], remaining_timepoints)
        capped = False
        if step_cap is not None:  # never below the reserve; at the reserve, the least light
            floor = grid["dose"][allowed].min()
            within = allowed & (grid["dose"] <= max(step_cap, floor) + 1e-12)
            capped = bool((allowed & ~within).any())
            allowed = within
        # Thompson draw of brightness at the next timepoint
        k = max(0.0, bleach["k"] + bleach["k_se"] * self._rng.standard_normal())
        if math.isfinite(bleach["log_b0"]):
            log_b0 = bleach["log_b0"] + bleach["b_se"] * self._rng.standard_normal()
            brightness = math.exp(log_b0 - k * self._dose_mj)
        else:
            brightness = math.nan
        idx = np.nonzero(allowed)[0]
        light = grid["power"][idx] * grid["exposure"][idx]
        if not math.isfinite(brightness):
            return self._record(
                t_next, None, "no data yet: keep the protocol's setting", start, bleach, {}
            )
        if self.policy == "steady" and len(self.observations) >= self.steady_after:
            return self._steady(t_next, idx, bleach, remaining_timepoints, start)
        signal = light * brightness
        exploring = len(self.observations) < EXPLORE_SETS
        sampled = np.empty(len(idx))
        mean = np.empty(len(idx))
        sd = np.empty(len(idx))
        for m, name in enumerate(self.space.modalities):
            sel = grid["modality"][idx] == m
            if not sel.any():
                continue
            x = self._features(signal[sel], grid["power"][idx][sel], grid["exposure"][idx][sel])
            mu0 = self._prior_mean(name, signal[sel], light[sel])
            # a joint sample (a Cholesky over all candidates) only while exploring
            r_mean, r_sd, r_samples = self._gp_residual(name, x, 1 if exploring else 0)
            sampled[sel] = mu0 + (r_samples[0] if exploring else r_mean)
            mean[sel] = mu0 + r_mean
            sd[sel] = r_sd
        score = sampled if exploring else mean - LCB_SDS * sd
        goal = (self._grid, self.goal, self.target_quality)
        choice, reason = choose(*goal, idx, score, per_timepoint, pace_cap)
        greedy, _ = choose(*goal, idx, mean - LCB_SDS * sd, per_timepoint, pace_cap)
        reason += " (Thompson sample)" if exploring else " (lower confidence bound)"
        if capped:
            reason += f"; light capped to keep {self.fluorescence_reserve:.0%} of the fluorescence"
        i = idx[choice]
        details = {
            "predicted_quality": float(mean[choice]),
            "predicted_quality_sd": float(sd[choice]),
            "sampled_quality": float(sampled[choice]),
            "predicted_signal_e": float(signal[choice]),
            "predicted_dose_mj": float(grid["dose"][i]),
            "predicted_bleach": float(1.0 - math.exp(-bleach["k"] * grid["dose"][i])),
            "explore": bool(idx[greedy] != i),
        }
        setting = (
            float(grid["power"][i]),
            float(grid["exposure"][i]),
            self.space.modalities[int(grid["modality"][i])],
        )
        return self._record(t_next, setting, reason, start, bleach, details)

    def _horizon(self, t_next: int, remaining_timepoints: int | None) -> int:
        if remaining_timepoints is not None:
            return max(1, remaining_timepoints)
        if self.n_timepoints is not None:
            return max(1, self.n_timepoints - t_next)
        return STEADY_HORIZON

    def _steady(
        self,
        t_next: int,
        idx: np.ndarray,
        bleach: dict[str, float],
        remaining_timepoints: int | None,
        start: float,
    ) -> dict[str, Any]:
        """Steady policy after learning: plan one setting once, then hold it (safety first)."""
        grid = self._grid
        if self._held is None:
            self._held = self._plan_steady(t_next, idx, bleach, remaining_timepoints)
        i, plan = self._held
        if (idx == i).any():
            reason = f"steady: holding the setting planned at t={plan['planned_at']}"
        else:  # the budget or the reserve no longer allows it: the least light that does
            i = int(idx[np.argmin(grid["dose"][idx])])
            reason = (
                "steady: the held setting no longer fits the dose budget or reserve: least light"
            )
        setting = (
            float(grid["power"][i]),
            float(grid["exposure"][i]),
            self.space.modalities[int(grid["modality"][i])],
        )
        details = {**plan, "predicted_dose_mj": float(grid["dose"][i]), "explore": False}
        return self._record(t_next, setting, reason, start, bleach, details)

    def _plan_steady(
        self,
        t_next: int,
        idx: np.ndarray,
        bleach: dict[str, float],
        remaining_timepoints: int | None,
    ) -> tuple[int, dict[str, Any]]:
        """The constant setting with the most predicted timepoints at the target quality.

        Each candidate's remaining timepoints are predicted as the sample bleaches under it
        (point estimates of brightness and bleaching rate; the quality curve plus the GP's
        correction at the candidate). A timepoint that would take the sample below its
        fluorescence reserve does not count: the reserve would override the held setting.
        """
        grid = self._grid
        horizon = self._horizon(t_next, remaining_timepoints)
        k = bleach["k"]
        brightness_now = math.exp(bleach["log_b0"] - k * self._dose_mj)
        light = grid["power"][idx] * grid["exposure"][idx]
        dose = grid["dose"][idx]
        steps = np.arange(horizon)
        fade = np.exp(-k * dose[:, None] * steps[None, :])  # candidates x future timepoints
        signal = light[:, None] * brightness_now * fade
        quality = np.empty_like(signal)
        for m, name in enumerate(self.space.modalities):
            sel = grid["modality"][idx] == m
            if not sel.any():
                continue
            now = signal[sel, 0]
            x = self._features(now, grid["power"][idx][sel], grid["exposure"][idx][sel])
            r_mean, _, _ = self._gp_residual(name, x, 0)
            mu = self._prior_mean(name, signal[sel], np.repeat(light[sel, None], horizon, 1))
            quality[sel] = mu + r_mean[:, None]
        if self.fluorescence_reserve > 0 and k > 0:
            left_after = np.exp(-k * (self._dose_mj + dose[:, None] * (steps[None, :] + 1)))
            quality[left_after < self.fluorescence_reserve] = 0.0
        target = float(self.target_quality or DEFAULT_TARGET_QUALITY)
        good = (quality >= target).sum(axis=1)
        if self.goal == "quality-within-budget" or good.max() == 0:
            score = quality.mean(axis=1)  # nothing reaches the target: the best mean quality
            near = np.nonzero(score >= score.max() - 0.005)[0]
        else:
            near = np.nonzero(good >= STEADY_NEAR * good.max())[0]
        if self.goal == "max-rate-at-quality":
            duration = grid["duration_ms"][idx][near]
            near = near[duration <= duration.min() * 1.001]
        j = int(near[np.argmin(grid["cost"][idx][near])])
        return int(idx[j]), {
            "planned_at": int(t_next),
            "planned_horizon": int(horizon),
            "predicted_good_timepoints": int(good[j]),
            "predicted_quality": float(quality[j, 0]),
            "predicted_quality_end": float(quality[j, -1]),
            "predicted_signal_e": float(signal[j, 0]),
            "predicted_bleach": float(1.0 - math.exp(-k * dose[j])),
        }

    def reserve_caps_mj(
        self, k: float, remaining_timepoints: int | None
    ) -> tuple[float | None, float | None]:
        """Dose caps (mJ per timepoint) from the fluorescence reserve: (step, pace).

        With ``f`` the fraction of the initial brightness left (``exp(−k·dose)``) and ``R``
        the reserve, ``step = ln(f/R)/k`` is the dose that would take the sample to its
        reserve in one timepoint and ``pace = step / remaining`` the dose per timepoint that
        keeps it to the end (None where the number of timepoints is unknown). Both are 0 for
        a sample at or below its reserve, and None without bleaching or a reserve.
        """
        if k <= 0 or self.fluorescence_reserve <= 0:
            return None, None
        remaining = remaining_timepoints
        if remaining is None and self.n_timepoints is not None and self.observations:
            remaining = max(1, self.n_timepoints - self.observations[-1].t - 1)
        headroom = -k * self._dose_mj - math.log(self.fluorescence_reserve)  # ln(f/R)
        if headroom <= 0:
            return 0.0, 0.0
        step = headroom / k
        return step, None if remaining is None else step / max(1, remaining)

    def _record(
        self,
        t_next: int,
        setting: tuple[float, float, str] | None,
        reason: str,
        start: float,
        bleach: dict[str, float],
        details: dict[str, Any],
    ) -> dict[str, Any]:
        last = self.observations[-1] if self.observations else None
        decision: dict[str, Any] = {
            "t": int(t_next),
            "power_mw": setting[0] if setting else None,
            "exposure_ms": setting[1] if setting else None,
            "modality": setting[2] if setting else None,
            "reason": reason,
            "goal": self.goal,
            "target_quality": self.target_quality,
            "bleach_k_per_mj": bleach.get("k"),
            "brightness_b0": math.exp(bleach["log_b0"])
            if math.isfinite(bleach.get("log_b0", math.nan))
            else None,
            "dose_so_far_mj": self._dose_mj,
            "observed": None
            if last is None
            else {"t": last.t, "quality": last.quality, **last.metrics},
            **details,
        }
        decision["decision_ms"] = (time.perf_counter() - start) * 1000.0
        return decision
