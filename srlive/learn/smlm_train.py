"""Training dl-smlm: DECODE's Gaussian-mixture loss on simulated prior-free bursts.

The network's pixels together form a mixture over where the middle frame's emitters are
(:mod:`srlive.recon.smlm.net`): pixel k claims an emitter with probability p_k, at
its centre plus the predicted offset, with the predicted photons, each with its predicted
standard deviation. The loss (Speiser et al. 2021) is the negative log-likelihood of the
truth under that model:

* count: the number of emitters against a Gaussian of mean Σp_k and variance Σp_k(1-p_k);
* places: each true emitter's (x, y, photons) under the mixture with weights p_k / Σp —
  a Gaussian NLL, so the predicted sigmas learn to be the actual errors (calibrated);
* background: the mean squared error of the background map.

No matching of predictions to emitters is needed, so dense frames train as easily as
sparse ones. Training resumes from its checkpoint (``OUT.ckpt.safetensors``, written every
``checkpoint_every`` steps), so a stop loses little.
"""

from __future__ import annotations

import json
import math
import time
from collections import deque
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import save

from srlive.learn.checkpoint import read_checkpoint, restore, save_checkpoint, write_atomic
from srlive.learn.smlm_data import TRAIN_SEED_BASE, SMLMBatch, SMLMDataRanges, make_batch
from srlive.recon.smlm.learned import load_smlm_weights
from srlive.recon.smlm.net import INPUT_SCALE, PHOTON_SCALE, SMLMNet, SMLMNetConfig

TASK = "dl-smlm"


@dataclass(frozen=True)
class SMLMTrainSettings:
    """One training run."""

    steps: int = 8000
    batch: int = 10
    patch: int = 32
    lr: float = 1e-3
    seed: int = 0
    threads: int = 1
    checkpoint_every: int = 100
    net: SMLMNetConfig = field(default_factory=SMLMNetConfig)
    ranges: SMLMDataRanges = field(default_factory=SMLMDataRanges)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _tensors(batch: SMLMBatch) -> dict[str, torch.Tensor]:
    return {
        "frames": torch.as_tensor(batch.frames / INPUT_SCALE, dtype=torch.float32),
        "x": torch.as_tensor(batch.x_px, dtype=torch.float32),
        "y": torch.as_tensor(batch.y_px, dtype=torch.float32),
        "n": torch.as_tensor(batch.photons_e / PHOTON_SCALE, dtype=torch.float32),
        "mask": torch.as_tensor(batch.mask),
        "bg": torch.as_tensor(batch.background_e / INPUT_SCALE, dtype=torch.float32),
    }


def _normal_logpdf(x: torch.Tensor, mu: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
    return -0.5 * ((x - mu) / sigma) ** 2 - torch.log(sigma) - 0.5 * math.log(2 * math.pi)


def mixture_loss(
    maps: torch.Tensor, logit: torch.Tensor, truth: dict[str, torch.Tensor]
) -> dict[str, torch.Tensor]:
    """DECODE's loss terms (means over the batch): count, places, background."""
    b, _, h, w = maps.shape
    p = maps[:, 0].reshape(b, -1)
    rows = torch.arange(h, dtype=maps.dtype).view(h, 1).expand(h, w).reshape(-1) + 0.5
    cols = torch.arange(w, dtype=maps.dtype).view(1, w).expand(h, w).reshape(-1) + 0.5
    mu_x = cols + maps[:, 1].reshape(b, -1)
    mu_y = rows + maps[:, 2].reshape(b, -1)
    mu_n = maps[:, 3].reshape(b, -1)
    s_x, s_y, s_n = (maps[:, c].reshape(b, -1) for c in (4, 5, 6))
    mask = truth["mask"]
    count = mask.sum(dim=1).to(maps.dtype)
    mean = p.sum(dim=1)
    var = (p * (1 - p)).sum(dim=1).clamp_min(1e-6)
    count_nll = 0.5 * (count - mean) ** 2 / var + 0.5 * torch.log(2 * math.pi * var)
    log_w = torch.nn.functional.logsigmoid(logit.reshape(b, -1)) - torch.log(mean)[:, None]
    lp = (
        log_w[:, None, :]
        + _normal_logpdf(truth["x"][:, :, None], mu_x[:, None, :], s_x[:, None, :])
        + _normal_logpdf(truth["y"][:, :, None], mu_y[:, None, :], s_y[:, None, :])
        + _normal_logpdf(truth["n"][:, :, None], mu_n[:, None, :], s_n[:, None, :])
    )  # (B, E, K)
    place_nll = -(torch.logsumexp(lp, dim=2) * mask).sum(dim=1)
    background = ((maps[:, 7] - truth["bg"]) ** 2).mean(dim=(1, 2))
    return {
        "count": count_nll.mean(),
        "places": place_nll.mean(),
        "background": background.mean(),
    }


def save_smlm_weights(model: SMLMNet, path: Path, info: dict[str, Any]) -> None:
    """Weights as safetensors; the header says the task, architecture and training (JSON)."""
    meta = {
        "task": TASK,
        "config": json.dumps(model.config.to_dict()),
        "info": json.dumps(info),
        "output_upscale": "1",
    }
    tensors = {k: v.detach().contiguous() for k, v in model.state_dict().items()}
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, save(tensors, metadata=meta))


def _batch(settings: SMLMTrainSettings, step: int) -> SMLMBatch:
    """The batch of one step (the same on a resumed run)."""
    rng = np.random.default_rng([settings.seed, step])
    return make_batch(
        rng, settings.batch, settings.patch, settings.net.context, settings.ranges,
        TRAIN_SEED_BASE + step * settings.batch,
    )  # fmt: skip


def _prefetch(settings: SMLMTrainSettings, first: int, ahead: int = 2) -> Iterator[SMLMBatch]:
    """Batches from step ``first`` on, simulated on a thread while the network trains."""
    pool = ThreadPoolExecutor(1)
    futures = deque(pool.submit(_batch, settings, s) for s in range(first, first + ahead))
    step = first + ahead
    while True:
        batch = futures.popleft().result()
        futures.append(pool.submit(_batch, settings, step))
        step += 1
        yield batch


def checkpoint_path(out: Path) -> Path:
    return out.with_name(out.stem + ".ckpt.safetensors")


def train_smlm(
    out: Path,
    settings: SMLMTrainSettings | None = None,
    resume: bool = True,
    log: Any = print,
    init_from: Path | None = None,
) -> dict[str, Any]:
    """Train (or resume) and write the weights to ``out``; returns what training did.
    ``init_from``: start from these dl-smlm weights (fine-tuning) instead of from scratch."""
    settings = settings or SMLMTrainSettings()
    torch.set_num_threads(settings.threads)
    torch.manual_seed(settings.seed)
    model = SMLMNet(settings.net)
    earlier: list[dict[str, Any]] = []
    if init_from is not None:
        start = load_smlm_weights(init_from)
        if start.net.config != settings.net:
            raise ValueError(f"{init_from}: another architecture ({start.net.config})")
        model.load_state_dict(start.net.state_dict())
        earlier = [*start.info.get("runs", []), {k: start.info[k] for k in ("train", "settings",
                   "command") if k in start.info}]  # fmt: skip
    optimiser = torch.optim.AdamW(model.parameters(), lr=settings.lr, weight_decay=1e-4)
    schedule = torch.optim.lr_scheduler.OneCycleLR(
        optimiser, settings.lr, total_steps=settings.steps, pct_start=0.05
    )
    ckpt = checkpoint_path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    state: dict[str, Any] = {"step": 0, "seconds": 0.0, "losses": []}
    if resume and ckpt.exists():
        checkpoint = read_checkpoint(ckpt)
        if checkpoint.state.get("settings") != json.loads(json.dumps(settings.to_dict())):
            raise ValueError(f"{ckpt}: trained with other settings; use --no-resume")
        restore(checkpoint, model, optimiser, schedule)
        state = {k: checkpoint.state[k] for k in ("step", "seconds", "losses")}
        log(f"resumed at step {state['step']}")
    batches = _prefetch(settings, state["step"])
    recent: list[list[float]] = []
    started = time.perf_counter() - state["seconds"]
    model.train()
    while state["step"] < settings.steps:
        step = state["step"]
        truth = _tensors(next(batches))
        maps, logit = model(truth["frames"])
        terms = mixture_loss(maps, logit, truth)
        loss = terms["count"] + terms["places"] + terms["background"]
        optimiser.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimiser.step()
        schedule.step()
        recent.append([float(loss.detach()), *(float(v.detach()) for v in terms.values())])
        state["step"] = step + 1
        if state["step"] % settings.checkpoint_every == 0 or state["step"] == settings.steps:
            mean = np.mean(recent, axis=0).round(4).tolist()
            recent = []
            state["seconds"] = time.perf_counter() - started
            state["losses"].append([state["step"], *mean])
            save_checkpoint(ckpt, model, optimiser, schedule, {**state,
                            "settings": settings.to_dict()})  # fmt: skip
            log(
                f"step {state['step']}/{settings.steps} loss {mean[0]:.3f} (count {mean[1]:.3f}"
                f" places {mean[2]:.3f} background {mean[3]:.4f}) {state['seconds']:.0f} s"
            )
    info = {
        "task": TASK,
        "runs": earlier,
        "init_from": None if init_from is None else str(init_from),
        "train": {
            "steps": settings.steps,
            "seconds": round(state["seconds"], 1),
            "final_loss": state["losses"][-1][1:] if state["losses"] else None,
            "loss_terms": ["total", "count", "places", "background"],
            "losses": state["losses"],
        },
        "settings": settings.to_dict(),
        "psf_sigma_px": list(settings.ranges.psf_sigma_px()),
    }
    save_smlm_weights(model.eval(), out, info)
    return info
