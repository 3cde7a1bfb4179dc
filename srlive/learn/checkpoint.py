"""Training checkpoints: safetensors tensors plus a JSON state, never a pickle.

A checkpoint is one safetensors file: the model's and the optimiser's tensors and the torch
RNG state as tensors, everything else (step, losses, learning-rate schedule, optimiser
groups, the settings it was trained with) as JSON in its metadata. Reading one parses a
JSON header and raw tensor bytes, so a planted or damaged file is refused but never runs
code. Files are replaced atomically: a crash during a save leaves the previous one.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open
from safetensors.torch import save

FORMAT = "srlive-checkpoint/1"
_MODEL, _OPTIMISER, _RNG = "model/", "optimiser/", "rng/torch"

__all__ = [
    "FORMAT",
    "Checkpoint",
    "CheckpointError",
    "read_checkpoint",
    "restore",
    "save_checkpoint",
    "write_atomic",
]


class CheckpointError(ValueError):
    """A file that cannot be read (or restored) as an srlive training checkpoint."""

    def __init__(self, path: str | os.PathLike[str], reason: object) -> None:
        why = " ".join(str(reason).split()) or type(reason).__name__
        super().__init__(
            f"checkpoint {path} is damaged or not an srlive checkpoint: {why}; "
            "delete it or train with --no-resume"
        )


@dataclass
class Checkpoint:
    """A checkpoint as read: its JSON state and its tensors (nothing restored yet)."""

    path: Path
    state: dict[str, Any]
    tensors: dict[str, torch.Tensor]


def write_atomic(path: str | os.PathLike[str], data: bytes) -> None:
    """Write ``data`` to ``path`` so that a crash leaves either the old file or the new one.

    The bytes go to a temporary file beside ``path``, are fsynced, then renamed over it.
    """
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o666)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _fsync_directory(path.parent)


def _fsync_directory(path: Path) -> None:
    """Make a rename in ``path`` durable (best effort: not every file system allows it)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def save_checkpoint(
    path: str | os.PathLike[str],
    model: torch.nn.Module,
    optimiser: torch.optim.Optimizer,
    schedule: torch.optim.lr_scheduler.LRScheduler,
    state: dict[str, Any],
) -> None:
    """Save model, optimiser, schedule, torch RNG and ``state`` (JSON-able) atomically."""
    tensors = {_MODEL + k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    optim = optimiser.state_dict()
    per_param: dict[str, dict[str, Any]] = {}
    for index, entry in optim["state"].items():
        for name, value in entry.items():
            if isinstance(value, torch.Tensor):
                tensors[f"{_OPTIMISER}{index}/{name}"] = value.detach().cpu().contiguous()
            else:
                per_param.setdefault(str(index), {})[name] = value
    tensors[_RNG] = torch.get_rng_state()
    full = {
        **state,
        "optimiser": {"param_groups": optim["param_groups"], "state": per_param},
        "schedule": schedule.state_dict(),
    }
    write_atomic(path, save(tensors, metadata={"format": FORMAT, "state": json.dumps(full)}))


def read_checkpoint(path: str | os.PathLike[str]) -> Checkpoint:
    """Parse a checkpoint; CheckpointError (one line) for anything that is not one."""
    path = Path(path)
    try:
        with safe_open(str(path), framework="pt") as handle:
            meta = handle.metadata() or {}
            if meta.get("format") != FORMAT:
                raise ValueError(f"no {FORMAT} header")
            state = json.loads(meta["state"])
            tensors = {key: handle.get_tensor(key) for key in handle.keys()}  # noqa: SIM118
        if not isinstance(state, dict):
            raise ValueError("its state is not a JSON object")
    except Exception as exc:
        raise CheckpointError(path, exc) from None
    return Checkpoint(path, state, tensors)


def restore(
    checkpoint: Checkpoint,
    model: torch.nn.Module,
    optimiser: torch.optim.Optimizer,
    schedule: torch.optim.lr_scheduler.LRScheduler,
) -> None:
    """Load a checkpoint's model, optimiser, schedule and torch RNG state (CheckpointError)."""
    try:
        tensors = checkpoint.tensors
        model.load_state_dict(_prefixed(tensors, _MODEL))
        optimiser.load_state_dict(_optimiser_state(checkpoint, optimiser))
        schedule.load_state_dict(checkpoint.state["schedule"])
        torch.set_rng_state(tensors[_RNG])
    except Exception as exc:
        raise CheckpointError(checkpoint.path, exc) from None


def _prefixed(tensors: dict[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    return {k[len(prefix) :]: v for k, v in tensors.items() if k.startswith(prefix)}


def _optimiser_state(checkpoint: Checkpoint, optimiser: torch.optim.Optimizer) -> dict[str, Any]:
    """The optimiser's state dict rebuilt from JSON and tensors, shapes checked."""
    stored = checkpoint.state["optimiser"]
    per_param = {int(i): dict(v) for i, v in stored["state"].items()}
    for key, value in _prefixed(checkpoint.tensors, _OPTIMISER).items():
        slot, name = key.split("/", 1)
        per_param.setdefault(int(slot), {})[name] = value
    params = [p for group in optimiser.param_groups for p in group["params"]]
    for index, entry in per_param.items():
        if not 0 <= index < len(params):
            raise ValueError(f"optimiser state for parameter {index} of {len(params)}")
        shape = params[index].shape
        for name, value in entry.items():
            if isinstance(value, torch.Tensor) and value.dim() and value.shape != shape:
                raise ValueError(f"optimiser {name} of parameter {index} has the wrong shape")
    groups = [
        {**group, "betas": tuple(group["betas"])} if "betas" in group else group
        for group in stored["param_groups"]
    ]
    return {"state": per_param, "param_groups": groups}
