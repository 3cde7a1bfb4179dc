"""The peer Picasso (picassosr 0.11.3) run on srlive's frames, in its own environment.

The peer's venv (``benchmarks/peers/picasso/setup_env.sh``) runs ``run_peer.py`` in a
subprocess on a temporary .npy of the raw uint16 frames with the same camera (offset, gain,
read noise as a uniform sCMOS map) and fitting box; its localisations come back in camera
pixels with pixel ``k``'s centre at ``k`` and are turned into srlive's convention (nm from
the frame's corner) here. Timing is Picasso's own identify + fit, measured inside the peer
process after an untimed warm-up that compiles its numba code.
"""

from __future__ import annotations

import json
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from srlive.recon.bench import REPO_ROOT

PEER_SCRIPT = REPO_ROOT / "benchmarks" / "peers" / "picasso" / "run_peer.py"
DEFAULT_PEER_PYTHON = REPO_ROOT / ".peers" / "picasso" / "bin" / "python"
PEER_NOT_SET_UP = "not set up: run benchmarks/peers/picasso/setup_env.sh"
PEER_TIMEOUT_S = 3600.0


def peer_python(given: str | Path | None) -> Path | None:
    """The peer venv's python, or None when it is not set up."""
    path = Path(given) if given else DEFAULT_PEER_PYTHON
    return path if path.is_file() else None


def run_picasso(
    python: Path,
    frames: np.ndarray,
    camera: dict[str, float],
    pixel_nm: float,
    box: int,
    min_net_gradients: list[float],
    repeats: int,
    fit: str = "gaussmle",
) -> dict[str, Any]:
    """Picasso's localisations at each minimum net gradient, in nm, and its summary."""
    with tempfile.TemporaryDirectory(prefix="srlive-picasso-") as tmp:
        movie = Path(tmp) / "movie.npy"
        np.save(movie, np.ascontiguousarray(frames, np.uint16))
        out = Path(tmp) / "out"
        command = [
            str(python),
            str(PEER_SCRIPT),
            str(movie),
            str(out),
            "--baseline", str(camera["offset_adu"]),
            "--sensitivity", str(camera["e_per_adu"]),
            "--read-noise-e", str(camera["read_noise_e"]),
            "--pixel-nm", str(pixel_nm),
            "--box", str(box),
            "--fit", fit,
            "--repeats", str(repeats),
            "--min-ng", *(str(v) for v in min_net_gradients),
        ]  # fmt: skip
        done = subprocess.run(
            command, capture_output=True, text=True, timeout=PEER_TIMEOUT_S, check=False
        )
        if done.returncode != 0:
            tail = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["no output"]
            raise RuntimeError(f"Picasso peer failed (exit {done.returncode}): {tail[0]}")
        summary = json.loads((out / "summary.json").read_text())
        locs = []
        for entry in summary["runs"]:
            data = np.load(out / entry["locs_path"])
            locs.append(
                {
                    "frame": data["frame"].astype(np.int64),
                    "x_nm": (data["x"].astype(np.float64) + 0.5) * pixel_nm,
                    "y_nm": (data["y"].astype(np.float64) + 0.5) * pixel_nm,
                    "uncertainty_x_nm": data["lpx"].astype(np.float64) * pixel_nm,
                    "uncertainty_y_nm": data["lpy"].astype(np.float64) * pixel_nm,
                    "photons": data["photons"].astype(np.float64),
                }
            )
    return {"summary": summary, "locs": locs}
