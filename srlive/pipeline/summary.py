"""The account of a run, live or protocol (what ``--json`` prints)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass
class SeriesSummary:
    """One series of a run's store: ``<output>/<name>``."""

    path: str
    modality: str
    sets: int
    frames: int
    sr_images: int
    sr_skipped: int
    raw_path: str  # the raw image's array, relative to the run's store
    sr_path: str | None  # the SR image's array (None: not reconstructed)


@dataclass
class RunSummary:
    """Machine-readable account of a run: every frame, set and SR image accounted for."""

    output: str
    kind: str  # "live" | "protocol"
    series: dict[str, SeriesSummary] = field(default_factory=dict)
    modality: str | None = None  # a live run's first modality
    sets_planned: int | None = None  # a protocol's plan (None: until stopped)
    sets_completed: int = 0
    raw_frames_acquired: int = 0
    raw_frames_stored: int = 0
    raw_frames_dropped: int = 0
    sr_images: int = 0
    sr_skipped: int = 0  # sets the live pipeline did not reconstruct (it fell behind)
    raw_axes: list[str] = field(default_factory=lambda: ["t", "ap", "y", "x"])
    sr_axes: list[str] = field(default_factory=lambda: ["t", "y", "x"])
    sequencing: str = "hardware"
    dose_mj: dict[str, float] = field(default_factory=dict)  # per stage position
    stopped_by: str | None = None
    interrupted: bool = False
    complete: bool = False  # the store says complete (nothing failed or was cut short)
    wall_s: float = 0.0
    raw_fps: float = 0.0
    recon_ms_median: float | None = None
    latency_ms: dict[str, Any] | None = None  # exposure end -> SR ready: n, p50, p99, max
    pipeline: dict[str, Any] = field(default_factory=dict)
    sim_parameters: dict[str, Any] | None = None  # a live run's pattern estimate
    fluctuation: dict[str, Any] | None = None  # the window, step and method's parameters
    optimizer: dict[str, Any] | None = None  # per optimized series: decisions, late, errors
    smlm: dict[str, Any] | None = None  # localisations, rate, density (and its control)
    lasers_on_at_end: list[int] = field(default_factory=list)
    error: str | None = None

    @property
    def first(self) -> SeriesSummary | None:
        """The run's first series (a live run's first modality)."""
        return next(iter(self.series.values()), None)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def smlm_status(details: dict[str, float]) -> str:
    """Localisation figures on one line: count, rate, density, precision."""
    parts = [f"{int(details.get('localizations', 0)):,} localisations"]
    for key, fmt in (
        ("locs_per_s", "{:,.0f}/s"),
        ("density_per_um2", "{:.2f}/µm² per frame"),
        ("precision_nm", "{:.1f} nm"),
    ):
        value = details.get(key, float("nan"))
        if value == value:  # not NaN
            parts.append(fmt.format(value))
    return ", ".join(parts)
