"""Model-card sections of SIM models: pattern use on prior-free fields and real data."""

from __future__ import annotations

from typing import Any

DESIGN_BANDS = (
    "- input: the 9 raw frames go through srlive's classical blind pattern estimator (the "
    "one that reconstructs real data: wavevectors, per-frame phases and modulation measured "
    "in each set, a nominal period only); the model reads the reconstruction split by band "
    "on the 2x grid (`srlive.recon.learned.pattern_input`: the widefield mean, the Wiener-filtered "
    "widefield band, the ±1 side bands of each angle in their true place) and two constant "
    "planes with the geometry (λ/(2NA) in camera pixels, fringe frequency / (2NA/λ)). Frames "
    "without a pattern give side-band planes of exactly zero, so there is no input from which "
    "to super-resolve without it.\n"
    "- target: the truth blurred to the SIM limit of the bands the estimator found (the "
    "widefield limit where none was: pattern-free pairs, sets too dark to measure), so the "
    "model is never asked for resolution its input does not carry.\n"
    "- data: 60 % prior-free structures (`simulators/sim_fields.py`: random arcs, points and "
    "clusters, rings and discs, stars, power-law textures; spirals held out), the rest the "
    "simulator's cells; random microscope (NA 1.2-1.49, emission 480-680 nm, pixel from the "
    "trained range), defocus and haze the decomposition does not model, modulation 0.3-1.0, "
    "phase errors and phase order, camera gain, read noise, background and hot pixels; 12 % "
    "of pairs with each angle's phases averaged (the ablation input, widefield-limited "
    "target)."
)
DESIGN_SINGLE_PHASE = (
    "- input: 3 raw frames, one phase per angle. The fringe of each frame (wavevector, phase, "
    "modulation) is measured in the frames themselves, blind but for a nominal period "
    "(`srlive.recon.single_phase`: each frame's residual, the frame minus the set's mean, "
    "holds only modulated light; its correlation with the whitened widefield image, searched "
    "over the 3-angle star, finds the fringe; live, `FringeTracker` measures it blind every "
    "10 sets and only the phases in between). The model reads, on the 2x grid "
    "(`srlive.recon.learned.single_phase_input`), the widefield mean and each frame's residual "
    "demodulated by its own fringe in phase and in quadrature (the side bands moved back to "
    "their true place, mixed with their mirror images, which one phase cannot separate), "
    "plus the two geometry planes. One widefield image three times, or an angle whose fringe "
    "is not found, gives demodulated planes of exactly zero.\n"
    "- target: the truth blurred to the SIM limit of the fringes found (the widefield limit "
    "where none was: pattern-free pairs, sets too dark or fringes too fine to measure); the "
    "predicted error is trained against the microscope's full SIM limit, so it includes the "
    "resolution an output lacks.\n"
    "- data: as dl-sim9's (60 % prior-free structures, random microscopes, defocus, haze, "
    "modulation 0.3-1.0, camera noise), one random phase of each angle; 12 % of pairs "
    "without the pattern: the mean of three widefield exposures, three times (the set's "
    "dose and noise)."
)


def _ssim_table(ssim: dict[str, dict[str, float]], scopes: list[str]) -> list[str]:
    methods = sorted(ssim[scopes[0]])
    lines = ["| method | " + " | ".join(scopes) + " |", "|---" * (len(scopes) + 1) + "|"]
    for m in methods:
        cells = [f"{ssim[s].get(m, float('nan')):.4f}" for s in scopes]
        lines.append(f"| {m} | " + " | ".join(cells) + " |")
    return lines


ABLATION = {
    9: "each angle's phases averaged",
    3: "one widefield image (three widefield exposures) three times",
}


def prior_free_lines(name: str, prior_free: dict[str, Any], frames: int = 9) -> list[str]:
    """Pattern use, SSIM per microscope and confidence tracking of one model (taking
    ``frames`` of each 9-frame set)."""
    scopes = list(prior_free["ssim"])
    microscopes = ", ".join(
        f"{m['name']}: {m['pixel_nm']:g} nm pixels, NA {m['na']:g}, {m['emission_nm']:g} nm, "
        f"period {m['period_nm']:g} nm"
        for m in prior_free["microscopes"]
    )
    rows = [r for r in _ssim_table(prior_free["ssim"], scopes) if name in r or "dl-" not in r]
    taken = "9-frame sets" if frames == 9 else "one phase per angle of 9-frame sets"
    lines = [
        "",
        "## Held-out prior-free fields, with and without the pattern",
        "",
        f"{prior_free['fields']} fields of {prior_free['size']}² camera pixels "
        f"({', '.join(prior_free['kinds'])}; spirals never trained, seeds held out), microscopes "
        f"{microscopes}; {taken} at 10 % light, median SSIM against each field's SIM-limited "
        f"truth; widefield: the mean of the 9 frames. Computed on {prior_free['computed_on']}. "
        f"Command: `srlive evaluate {name} --fields {prior_free.get('fields_per_kind', 2)}` "
        "(its `prior_free` section).",
        "",
        *rows,
        "",
    ]
    for scope, per_model in prior_free["pattern_use"].items():
        use = per_model.get(name)
        if use:
            lines.append(
                f"- pattern use ({scope}): adds {use['gain']:+.4f} SSIM over widefield with the "
                f"pattern, {use['gain_without_pattern']:+.4f} with {ABLATION[frames]}: "
                f"**{use['pattern_use']:.0%} of the gain comes from the pattern** "
                f"(mean over {use['fields']} fields)"
            )
    track = prior_free.get("confidence_tracking", {}).get(name)
    if track:
        lines.append(
            f"- confidence: Spearman rank correlation with SSIM over all {track['rows']} rows "
            f"(held-out, pattern removed, saturated, outside the trained range): "
            f"{track['spearman_confidence_vs_ssim']:.3f}"
        )
    return lines


def real_data_lines(name: str, real: dict[str, Any] | None, frames: int = 9) -> list[str]:
    """Agreement with a third party's SIM image on real data, per time point."""
    if not real:
        return []
    o = real["optics"]
    lines = [
        "",
        "## Real data from another lab's microscope",
        "",
        f"`{real['data']}` (`../shared/data/real-sim/tsim-er/`), optics {o['pixel_nm']:g} nm, "
        f"NA {o['na']:g}, {o['emission_nm']:g} nm, nominal period {o['period_nm']:g} nm, "
        f"offset {o['offset_adu']:g} ADU; agreement with the authors' SIM image "
        "(`../shared/tools/compare_to_reference.py`: full / high-pass correlation)"
        + ("; the 3-frame model takes the first phase of each angle" if frames == 3 else "")
        + ".",
        "",
        "| method | "
        + " | ".join(f"t{t}" for t in range(len(real["per_time_point"]["widefield"])))
        + " |",
        "|---" * (1 + len(real["per_time_point"]["widefield"])) + "|",
    ]
    for method, entries in real["per_time_point"].items():
        if method.startswith("dl-") and method not in (name, "dl-wf2sr"):
            continue
        cells = []
        for e in entries:
            conf = f", confidence {e['confidence']:.3f}" if "confidence" in e else ""
            cells.append(f"{e['full']:.4f} / {e['highpass']:.4f}{conf}")
        lines.append(f"| {method} | " + " | ".join(cells) + " |")
    return lines


def pattern_card_lines(name: str, info: dict[str, Any], evaluation: dict[str, Any]) -> list[str]:
    """The card sections of a pattern-conditioned SIM model."""
    sim = info.get("sim", {})
    frames = 3 if name == "dl-sim3" else 9
    design = DESIGN_SINGLE_PHASE if frames == 3 else DESIGN_BANDS
    lines = ["", "## What the model reads, and why it must use the pattern", "", design, ""]
    if "psf_px" in sim:
        lines.append(
            f"- trained geometry (stored in the weights; confidence falls outside it): "
            f"λ/(2NA) {sim['psf_px'][0]:g}-{sim['psf_px'][1]:g} camera pixels, fringe frequency "
            f"{sim['frequency'][0]:g}-{sim['frequency'][1]:g} of 2NA/λ"
        )
    if evaluation.get("prior_free"):
        lines += prior_free_lines(name, evaluation["prior_free"], frames)
    lines += real_data_lines(name, evaluation.get("real_data"), frames)
    return lines
