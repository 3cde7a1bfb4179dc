"""What a weights file says about itself (task, architecture), read without torch,
and where a model's weights are (:func:`resolve_weights`).

The live pipeline needs a learned model's output grid before the first set (to size the
store) but runs the model in another process: reading the safetensors header here keeps
the weights out of the acquisition process.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from safetensors import safe_open

from srlive.recon.learned.tasks import TASKS

# the shipped weights and their cards live with the training code that made them
WEIGHTS_DIR = Path(__file__).resolve().parents[2] / "learn" / "weights"


@dataclass(frozen=True)
class WeightsMeta:
    """The header of an srlive weights file."""

    path: Path
    task: str
    upscale: int
    uncertainty: bool = False  # predicts an error map beside each output


def read_weights_meta(path: str | Path) -> WeightsMeta:
    """The task and output grid of an srlive weights file; one-line ValueError otherwise."""
    path = Path(path)
    try:
        with safe_open(str(path), framework="numpy") as handle:
            meta = handle.metadata() or {}
        config = json.loads(meta["config"])
        # band-input models read the 2x grid already: the header says the output's grid
        upscale = int(meta.get("output_upscale", config.get("upscale", 2)))
        uncertainty = bool(config.get("uncertainty", False))
        return WeightsMeta(path, str(meta["task"]), upscale, uncertainty)
    except FileNotFoundError:
        raise FileNotFoundError(f"weights not found: {path}") from None
    except Exception as exc:
        raise ValueError(f"{path}: not a valid srlive model checkpoint ({exc})") from None


def resolve_weights(name_or_path: str | Path) -> Path:
    """A shipped model by name (``dl-sim3``) or a path to a weights file (``.safetensors``,
    or any existing file that is not a shipped name); FileNotFoundError if there is none."""
    name, path = str(name_or_path), Path(name_or_path)
    shipped = WEIGHTS_DIR / f"{name}.safetensors"
    if path.suffix == ".safetensors" or (not shipped.exists() and path.is_file()):
        if not path.exists():
            raise FileNotFoundError(f"weights not found: {path}")
        return path
    if shipped.exists():
        return shipped
    if name in TASKS:
        raise FileNotFoundError(
            f"no shipped weights for {name!r} (expected {shipped}); train them with "
            f"`srlive train {name}`"
        )
    known = ", ".join(sorted(p.stem for p in WEIGHTS_DIR.glob("*.safetensors")))
    raise FileNotFoundError(
        f"no model named {name!r}: give a shipped model ({known}) or a .safetensors file"
    )
