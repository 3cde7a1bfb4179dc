"""useq-schema MDA sequences, checked the way srlive runs them: strictly, and counted first.

useq ignores keys it does not know (a typo is silently dropped) and materialises every axis
when it iterates or reports ``sizes`` (a time plan of 10⁹ loops becomes a 10⁹-element tuple),
so srlive checks the user's text against the models itself and counts a sequence's events
arithmetically, bounding every axis, before anything iterates it.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

import useq
from pydantic import BaseModel

Location = tuple[str | int, ...]


class PlanError(ValueError):
    """A sequence srlive cannot run as written; ``loc`` is the field (``mda.``-relative)."""

    def __init__(self, loc: Location, message: str) -> None:
        super().__init__(message)
        self.loc = loc


def non_finite(data: Any, loc: Location = ()) -> tuple[Location, float] | None:
    """The first NaN or infinite number anywhere in ``data`` (parsed YAML/JSON) and where."""
    if isinstance(data, float) and not math.isfinite(data):
        return loc, data
    items: Any = ()
    if isinstance(data, dict):
        items = data.items()
    elif isinstance(data, list | tuple):
        items = enumerate(data)
    for key, value in items:
        found = non_finite(value, (*loc, key))
        if found is not None:
            return found
    return None


def unknown_field(raw: Any, value: Any, loc: Location = ()) -> Location | None:
    """Where ``raw`` (the user's text) has a key the model validated from it has no field for.

    Walks the user's mapping beside the validated model: free-form dicts (``metadata``) and
    values given in another form (a channel as a string, a position as a list) are skipped.
    """
    if isinstance(value, BaseModel) and isinstance(raw, dict):
        fields = type(value).model_fields
        names = {f.alias: name for name, f in fields.items() if f.alias} | {n: n for n in fields}
        for key, sub in raw.items():
            if key not in names:
                return (*loc, key)
            found = unknown_field(sub, getattr(value, names[key]), (*loc, key))
            if found is not None:
                return found
        return None
    if isinstance(value, useq.MultiPhaseTimePlan) and isinstance(raw, list):
        value = value.phases  # a list of phases is a multi-phase plan
    if isinstance(value, list | tuple) and isinstance(raw, list) and len(raw) == len(value):
        for i, (sub_raw, sub) in enumerate(zip(raw, value, strict=True)):
            found = unknown_field(sub_raw, sub, (*loc, i))
            if found is not None:
                return found
    return None


def check_supported(mda: useq.MDASequence) -> None:
    """Refuse what srlive would otherwise ignore or mis-store, naming the field."""
    if mda.autofocus_plan is not None:
        raise PlanError(("autofocus_plan",), "autofocus plans are not supported")
    if mda.setup is not None:
        raise PlanError(("setup",), "setup events are not supported")
    for i, position in enumerate(_positions(mda)):
        if position.sequence is not None:
            raise PlanError(
                ("stage_positions", i, "sequence"), "per-position sub-sequences are not supported"
            )
        if position.properties:
            raise PlanError(
                ("stage_positions", i, "properties"),
                "per-position properties are not supported (use --set)",
            )
    for i, channel in enumerate(mda.channels):
        if channel.camera is not None:
            raise PlanError(("channels", i, "camera"), "srlive drives the profile's one camera")


def _positions(mda: useq.MDASequence) -> tuple[Any, ...]:
    plan = mda.stage_positions
    return tuple(plan) if isinstance(plan, tuple) else tuple(plan.image_positions)


def timepoints(plan: Any) -> int:
    """Timepoints of a time plan, arithmetically (useq iterates: 10⁹ loops, 10⁹ floats)."""
    if plan is None:
        return 0
    try:
        if isinstance(plan, useq.MultiPhaseTimePlan):  # later phases skip their first point
            return 1 + sum(int(phase.loops) - 1 for phase in plan.phases) if plan.phases else 0
        return int(plan.loops)
    except (ZeroDivisionError, OverflowError):
        raise PlanError(("time_plan",), "a duration needs an interval of more than 0 s") from None


AXES = {  # axis -> (MDASequence field, what it counts)
    "t": ("time_plan", "timepoints"),
    "p": ("stage_positions", "positions"),
    "g": ("grid_plan", "grid tiles"),
    "c": ("channels", "channels"),
    "z": ("z_plan", "z planes"),
}


def _axis_sizes(mda: useq.MDASequence, limit: int) -> dict[str, int]:
    """Each axis' length without materialising one longer than ``limit``; 0 if unused."""
    sizes = {"t": timepoints(mda.time_plan), "c": len(mda.channels)}
    sizes["p"] = len(_positions(mda)) if mda.stage_positions else 0
    grid = mda.grid_plan
    try:
        sizes["g"] = int(grid.num_positions()) if grid is not None else 0
    except ValueError:
        raise PlanError(
            ("grid_plan",), "give the grid's fov_width and fov_height (µm): tiles are that size"
        ) from None
    z = mda.z_plan
    estimate = int(z.num_positions()) if z is not None else 0
    sizes["z"] = len(list(z)) if z is not None and estimate <= limit else estimate
    for axis, size in sizes.items():
        field, what = AXES[axis]
        if size and axis not in mda.axis_order:
            raise PlanError(("axis_order",), f"{field} is given but {axis!r} is not in axis_order")
        if size > limit:
            raise PlanError((field,), f"{size:,} {what} (at most {limit:,})")
    return sizes


def sets_per_channel(mda: useq.MDASequence, limit: int) -> list[int]:
    """Events (sets) of each channel (one entry when there are none), exactly as useq
    iterates a supported sequence (see :func:`check_supported`), without iterating it."""
    sizes = _axis_sizes(mda, limit)
    if not any(sizes.values()):
        return [0] * max(1, len(mda.channels))
    others = max(sizes["p"], 1) * max(sizes["g"], 1)
    n_t, n_z = sizes["t"], sizes["z"]
    if not mda.channels:
        return [others * max(n_t, 1) * max(n_z, 1)]
    counts = []
    for channel in mda.channels:
        t = math.ceil(n_t / channel.acquire_every) if n_t else 1
        z = 1 if (not channel.do_stack and mda.z_plan is not None) or not n_z else n_z
        counts.append(others * t * z)
    return counts


def positions_visited(mda: useq.MDASequence) -> Iterator[useq.MDAEvent]:
    """One event per stage position, grid tile, channel and z plane the sequence visits
    (the time plan removed: every timepoint visits the same places)."""
    yield from mda.replace(time_plan=None)
