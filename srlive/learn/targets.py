"""Fine-tuning targets: the ``wiener-sim`` reconstruction of every store, made once on Dask.

The targets of ``OUT.safetensors`` live in ``OUT.targets`` and are exactly what
``srlive reconstruct STORE... --method wiener-sim --out OUT.targets`` writes (one store: that
path is its output store; several: ``OUT.targets/<store name>.zarr`` each), made by
:func:`srlive.recon.distributed.reconstruct_distributed` on a local cluster or a running
scheduler. A target that is complete and was made from the same store by ``wiener-sim`` is
reused; an interrupted one is resumed by the reconstruction itself.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from srlive.recon.distributed import made_from, reconstruction_state
from srlive.storage.guard import is_srlive_store, srlive_attrs

METHOD = "wiener-sim"


@dataclass(frozen=True)
class Targets:
    """One target store per input store (same order), and what this call did."""

    paths: list[Path]
    reused: list[Path]
    summary: dict[str, Any] | None  # the reconstruction's summary; None: every target reused

    def info(self) -> dict[str, Any]:
        """JSON-ready record for the weights' metadata."""
        outputs = (self.summary or {}).get("outputs", [])
        return {
            "targets": [str(p) for p in self.paths],
            "reused": [str(p) for p in self.reused],
            "reconstructed_sets": sum(o["reconstructed_now"] for o in outputs),
            "cluster": (self.summary or {}).get("cluster"),
        }


def targets_dir(weights: str | Path) -> Path:
    """Where the fine-tuning targets of ``weights`` go: beside it, ``.targets`` for its suffix."""
    return Path(weights).with_suffix(".targets")


def is_complete_target(target: Path, store: Path) -> bool:
    """True if ``target`` is a complete ``wiener-sim`` reconstruction of ``store``."""
    return reconstruction_state(target, store, METHOD) == "complete"


def _check_in_the_way(target: Path, store: Path) -> None:
    """Refuse anything at ``target`` but a (complete or interrupted) target of ``store``."""
    if not (target.exists() or target.is_symlink()):
        return
    attrs = srlive_attrs(target)
    if attrs is None:
        raise ValueError(f"{target} is in the way of the targets of {store}; delete it")
    if not made_from(attrs, store, METHOD):
        made = (attrs.get("run") or {}).get("reconstructed_from")
        raise ValueError(f"{target} holds the targets of {made}, not of {store}; delete it")


def prepare_targets(
    stores: Sequence[Path],
    out: Path,
    workers: int | None = None,
    scheduler: str | None = None,
    progress: bool = False,
) -> Targets:
    """Reconstruct (or reuse) the target of every store into ``out`` (see the module docstring).

    ``stores`` are resolved paths. Names that would share an output, anything at a target's
    path but a target of that store (another store's, the other layout's), and ``workers``
    with ``scheduler`` raise ValueError before anything is reconstructed.
    """
    from srlive.recon.distributed import output_paths, reconstruct_distributed

    if workers is not None and workers < 1:
        raise ValueError("--workers must be at least 1")
    if workers is not None and scheduler is not None:
        raise ValueError("give --workers (a local cluster) or --scheduler, not both")
    paths = output_paths(stores, out)
    if len(stores) > 1 and is_srlive_store(out):
        raise ValueError(
            f"{out} holds the targets of a single store; delete it to fine-tune on several"
        )
    for store, path in zip(stores, paths, strict=True):
        _check_in_the_way(path, store)
    pending = [(s, p) for s, p in zip(stores, paths, strict=True) if not is_complete_target(p, s)]
    summary = None
    if pending:
        # several: into ``out``, where output_paths names each as above; one: its own path
        where = out if len(pending) > 1 else pending[0][1]
        inputs = [s for s, _ in pending]
        summary = reconstruct_distributed(
            inputs, METHOD, where, workers=workers, scheduler=scheduler, progress=progress
        )
    done = {p for _, p in pending}
    return Targets(paths, [p for p in paths if p not in done], summary)
