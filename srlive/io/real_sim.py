"""Real raw SIM data with a third party's reconstruction, and the project's agreement metric.

The data sit beside a checkout in ``../shared`` (``data/real-sim/``, never copied into the
repository); :func:`load_agreement` loads the metric from its own file
(``../shared/tools/compare_to_reference.py``). Used by ``srlive bench sim-real`` and by the
learned models' evaluation on real data (:mod:`srlive.learn.real_eval`).
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import tifffile

__all__ = [
    "DEFAULT_REAL_INPUT",
    "METRIC_PATH",
    "SHARED",
    "Agreement",
    "RealOptics",
    "default_reference",
    "load_agreement",
    "load_reference",
]

SHARED = Path(__file__).resolve().parents[3] / "shared"
DEFAULT_REAL_INPUT = SHARED / "data" / "real-sim" / "tsim-er" / "ER_1.tif"
METRIC_PATH = SHARED / "tools" / "compare_to_reference.py"

Agreement = Callable[[np.ndarray, np.ndarray], dict[str, Any]]


@dataclass(frozen=True)
class RealOptics:
    """The optics the real data is reconstructed with (the same for srlive and the peer)."""

    pixel_nm: float = 65.0
    na: float = 1.49
    emission_nm: float = 510.0
    offset_adu: float = 60.0
    n: float = 1.518  # immersion index; only the peer takes it (its 2D processor ignores it)


def default_reference(raw_path: Path) -> Path:
    """``X_reference_sim.tif`` beside ``X.tif``."""
    return raw_path.with_name(f"{raw_path.stem}_reference_sim.tif")


def load_agreement(path: Path = METRIC_PATH) -> Agreement:
    """The project's agreement metric, ``agreement(img, ref)``, loaded from its own file."""
    if not path.is_file():
        raise FileNotFoundError(f"agreement metric not found: {path}")
    spec = importlib.util.spec_from_file_location("compare_to_reference", path)
    if spec is None or spec.loader is None:
        raise ValueError(f"{path}: cannot be loaded as a Python module")
    module = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(module)
    except ImportError as exc:
        raise ValueError(f"{path}: needs {exc.name} (pip install -e '.[test]')") from None
    return module.agreement


def load_reference(path: Path, shape: tuple[int, int]) -> np.ndarray:
    """The reference SR image (float64), checked to be one 2-D image of ``shape``."""
    if not path.is_file():
        raise FileNotFoundError(f"reference image not found: {path}")
    ref = np.squeeze(np.asarray(tifffile.imread(path), np.float64))
    if ref.shape != shape:
        raise ValueError(f"{path}: expected one {shape[0]}x{shape[1]} image, got shape {ref.shape}")
    return ref
