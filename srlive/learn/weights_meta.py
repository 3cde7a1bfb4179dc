"""What a weights file says about itself (task, architecture), read without torch.

The live pipeline needs a learned model's output grid before the first set (to size the
store) but runs the model in another process: reading the safetensors header here keeps
the weights out of the acquisition process.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from safetensors import safe_open


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
