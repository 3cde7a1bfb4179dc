"""Training: simulated pairs -> model, with a progress bar, checkpoints, resume, safetensors.

``train_model`` writes ``OUT.safetensors`` (weights + JSON metadata: task, architecture,
training settings, steps, wall time, losses) and keeps ``OUT.ckpt`` (weights, optimiser,
step, RNG state; safetensors plus JSON, see :mod:`srlive.learn.checkpoint`) every
``checkpoint_every`` steps so an interrupted run resumes where it stopped. Both are
replaced atomically; a checkpoint of other settings, or a damaged one, is refused.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import save
from torch.nn import functional as F
from tqdm import tqdm

from srlive.learn.checkpoint import (
    CheckpointError,
    read_checkpoint,
    restore,
    save_checkpoint,
    write_atomic,
)
from srlive.learn.data import PairStream, SimSettings
from srlive.learn.fluctuation import BurstSimSettings
from srlive.learn.machine import machine_description
from srlive.learn.sim_pairs import PatternSimSettings
from srlive.learn.store_pairs import ManyStorePairs, fine_tune_stores
from srlive.recon.learned.models import (
    ModelConfig,
    SRUNet,
    count_parameters,
    error_scale,
)
from srlive.recon.learned.tasks import TASKS, Task
from srlive.recon.learned.weights import bf16_supported, load_weights


@dataclass(frozen=True)
class TrainSettings:
    """What a training run does (stored with the weights)."""

    steps: int = 2000
    batch: int = 8
    patch: int = 64
    lr: float = 7e-4  # peak; at 1.5e-3 the denoiser diverged at the peak (no norm layers)
    clip_grad_norm: float = 1.0
    width: int = 24
    seed: int = 0
    checkpoint_every: int = 100
    uncertainty: bool = True  # learn a per-pixel error scale (trust map) beside the image
    workers: int = 1  # data-simulation processes beside the training loop
    bf16: bool = True  # bfloat16 autocast where the device supports it (AMX/AVX-512 CPUs, GPUs)
    ssim_weight: float = 0.0  # weight of a (1 - SSIM) term beside L1 + gradient L1
    stem: int = 1  # pixel-unshuffle factor at the input (2: U-Net at half resolution)
    context_levels: int = 0  # coarser levels below the bottleneck
    # train only the error head (fine-tuning): the image the model makes stays bit-identical
    error_head_only: bool = False


def build_model(
    task: Task,
    width: int = 24,
    uncertainty: bool = True,
    stem: int = 1,
    context_levels: int = 0,
) -> SRUNet:
    # band inputs are already on the 2x grid; their base estimate is the widefield plane
    upscale = 2 if task.super_resolve and not task.pattern_bands else 1
    # the 3-frame model's planes are read per stem block by a linear embedding, its geometry
    # planes once per block: live-rate inference on the 2x grid
    single = task.inputs == "single-phase"
    config = ModelConfig(
        task.in_channels,
        upscale,
        width,
        1,
        uncertainty,
        stem,
        context_levels,
        task.fluctuation,
        base_channel=0 if task.pattern_bands else None,
        constant_planes=2 if single else 0,
        stem_kernel=1 if single else 3,
    )
    return SRUNet(config)


def _image_loss(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """L1 plus L1 of image gradients (keeps edges sharp without hallucinating texture)."""

    def grads(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return x[..., 1:, :] - x[..., :-1, :], x[..., :, 1:] - x[..., :, :-1]

    (py, px), (ty, tx) = grads(pred), grads(target)
    return F.l1_loss(pred, target) + 0.5 * (F.l1_loss(py, ty) + F.l1_loss(px, tx))


SSIM_SIGMA = 1.5  # Gaussian window of the SSIM the evaluation reports (srlive.recon.similarity)


def ssim_loss(
    pred: torch.Tensor,
    target: torch.Tensor,
    sigma: float = SSIM_SIGMA,
    span: torch.Tensor | None = None,
) -> torch.Tensor:
    """1 − SSIM (Wang et al. 2004, Gaussian window) over ``span`` (default: each target's range).

    The same definition as :func:`srlive.recon.similarity.ssim` without the affine fit, so the
    network is pushed toward what the evaluation scores: local structure and local mean in
    dim regions that L1 under-weights (sparse puncta on a dark background). A crop of a
    larger field passes the field's range as ``span`` (one value per image), as the
    evaluation judges every region of a field by the whole field's range.
    """
    radius = int(3.5 * sigma)  # the window scipy's gaussian_filter(truncate=3.5) uses
    g = torch.signal.windows.gaussian(2 * radius + 1, std=sigma, device=pred.device)
    g = g / g.sum()
    channels = pred.shape[1]
    kernel_y = g.view(1, 1, -1, 1).expand(channels, 1, -1, 1)
    kernel_x = g.view(1, 1, 1, -1).expand(channels, 1, 1, -1)

    def blur(a: torch.Tensor) -> torch.Tensor:
        a = F.conv2d(a, kernel_y, groups=channels)
        return F.conv2d(a, kernel_x, groups=channels)

    if span is None:
        span = target.amax(dim=(-2, -1), keepdim=True) - target.amin(dim=(-2, -1), keepdim=True)
    else:
        span = span.reshape(-1, 1, 1, 1).to(target)
    span = span.clamp_min(1e-6)
    c1, c2 = (0.01 * span) ** 2, (0.03 * span) ** 2
    mx, my = blur(pred), blur(target)
    sxx = blur(pred * pred) - mx * mx
    syy = blur(target * target) - my * my
    sxy = blur(pred * target) - mx * my
    value = ((2 * mx * my + c1) * (2 * sxy + c2)) / ((mx * mx + my * my + c1) * (sxx + syy + c2))
    return 1.0 - value.mean()


def _loss(
    output: torch.Tensor,
    target: torch.Tensor,
    ssim_weight: float = 0.0,
    span: torch.Tensor | None = None,
    image_terms: bool = True,
) -> torch.Tensor:
    """Image loss on channel 0; Laplace negative log-likelihood for the uncertainty channel.

    ``target``'s first channel is the image's target; its last is what the error is measured
    against (the same with one channel; pattern-conditioned SIM pairs give the microscope's
    SIM limit there, see :func:`srlive.learn.sim_pairs.pattern_pair`). The likelihood sees the
    image detached and the error head reads detached features (see
    :class:`~srlive.recon.learned.models.SRUNet`), so learning the error scale never trades
    image quality for a smaller predicted error: the image is trained exactly as without it.
    ``image_terms=False`` leaves only the likelihood (the error head trained alone).
    """
    image = output[:, :1]
    loss = output.new_zeros(())
    if image_terms:
        loss = loss + _image_loss(image, target[:, :1])
        if ssim_weight:
            loss = loss + ssim_weight * ssim_loss(image, target[:, :1], span=span)
    if output.shape[1] > 1:
        scale = error_scale(output[:, 1:2])
        error = (target[:, -1:] - image.detach()).abs()
        loss = loss + 0.1 * (error / scale + torch.log(scale)).mean()
    return loss


def save_weights(model: SRUNet, task: Task, path: Path, metadata: dict[str, Any]) -> None:
    """Weights as safetensors with everything needed to rebuild and judge the model."""
    meta = {
        "task": task.name,
        "config": json.dumps(model.config.to_dict()),
        "info": json.dumps(metadata),
        # output pixels per camera pixel (band-input models read the 2x grid already)
        "output_upscale": str(2 if task.pattern_bands else model.config.upscale),
    }
    tensors = {k: v.contiguous() for k, v in model.state_dict().items()}
    write_atomic(path, save(tensors, metadata=meta))  # a crash mid-save keeps the old file


def _load_start(model: SRUNet, start: SRUNet) -> None:
    """Start from earlier weights; context levels the earlier model lacks start as the
    identity (their output layer is zero-initialised), so adding them keeps what it learnt."""
    missing, unexpected = model.load_state_dict(start.state_dict(), strict=False)
    if unexpected or any(not key.startswith("deep.") for key in missing):
        differ = len(missing) + len(unexpected)
        raise ValueError(f"weights do not fit the model ({differ} tensors differ)")


def _identity(
    task: Task,
    model: SRUNet,
    settings: TrainSettings,
    sim: SimSettings | BurstSimSettings | PatternSimSettings,
    init_from: str | Path | None,
    stores: list[Path] | None,
) -> dict[str, Any]:
    """What a checkpoint must have been trained with to be resumed (as JSON reads it back).

    ``stores``: the fine-tuning stores, resolved and sorted (None: simulated pairs).
    """
    identity = {
        "task": task.name,
        "config": model.config.to_dict(),
        "settings": asdict(settings),
        "sim": asdict(sim),
        "init_from": str(Path(init_from).resolve()) if init_from else None,
        "fine_tune_store": [str(s) for s in stores] if stores else None,
    }
    return json.loads(json.dumps(identity))


def _differences(stored: dict[str, Any], current: dict[str, Any]) -> list[str]:
    """``name: checkpoint -> now`` for every setting that differs (one level of nesting)."""
    found = []
    for key, now in current.items():
        then = stored.get(key)
        if then == now:
            continue
        if isinstance(then, dict) and isinstance(now, dict):
            found += [
                f"{sub}: {then.get(sub)!r} -> {now.get(sub)!r}"
                for sub in {**then, **now}
                if then.get(sub) != now.get(sub)
            ]
        else:
            found.append(f"{key}: {then!r} -> {now!r}")
    return found


def _resume(
    path: Path,
    identity: dict[str, Any],
    model: SRUNet,
    optimiser: torch.optim.Optimizer,
    schedule: torch.optim.lr_scheduler.LRScheduler,
) -> tuple[int, float, list[float]]:
    """Restore training from a checkpoint of the same run; returns step, elapsed, losses."""
    checkpoint = read_checkpoint(path)
    state = checkpoint.state
    if not isinstance(state.get("identity"), dict):
        raise CheckpointError(path, "it records no training settings")
    stored = dict(state["identity"])
    if isinstance(stored.get("fine_tune_store"), str):  # one store, before several were taken
        stored["fine_tune_store"] = [stored["fine_tune_store"]]
    differ = _differences(stored, identity)
    if differ:
        raise ValueError(
            f"checkpoint {path} is for other settings ({'; '.join(sorted(set(differ)))}); "
            "delete it or train with --no-resume"
        )
    restore(checkpoint, model, optimiser, schedule)
    step, elapsed, losses = state.get("step"), state.get("elapsed"), state.get("losses")
    total = identity["settings"]["steps"]
    if not (
        type(step) is int
        and 0 <= step <= total
        and isinstance(elapsed, int | float)
        and isinstance(losses, list)
        and len(losses) == step
        and all(isinstance(v, int | float) for v in losses)
    ):
        raise CheckpointError(path, "its step, elapsed time or losses are invalid")
    return step, float(elapsed), [float(v) for v in losses]


def train_model(
    task_name: str,
    out: str | Path,
    settings: TrainSettings = TrainSettings(),
    sim: SimSettings | BurstSimSettings | PatternSimSettings = SimSettings(),
    resume: bool = True,
    init_from: str | Path | None = None,
    progress: bool = True,
    fine_tune_store: str | Path | Sequence[str | Path] | None = None,
    cluster_workers: int | None = None,
    scheduler: str | None = None,
) -> dict[str, Any]:
    """Train (or resume, or fine-tune from ``init_from``) a model; returns its metadata.

    With ``fine_tune_store`` (one store or several) the pairs come from a user's OME-Zarr
    acquisitions instead of the simulator (see :class:`~srlive.learn.store_pairs.ManyStorePairs`);
    for the SIM tasks their ``wiener-sim`` targets are first reconstructed into
    ``OUT.targets`` on a Dask cluster, a LocalCluster of ``cluster_workers`` processes
    (default 1) or the one at ``scheduler`` (see :mod:`srlive.learn.targets`), or reused.
    """
    # the model trains on every core: cutting several crops from each simulated field keeps
    # the data worker's share small (on 2 cores a step took 0.37 s on two threads against
    # 0.56 s on one beside the worker)
    task = TASKS[task_name]
    if task.fluctuation and not isinstance(sim, BurstSimSettings):
        # the CLI passes SimSettings; a burst model takes its own ranges (same field sizes)
        fields = sim.field_sizes if sim != SimSettings() else BurstSimSettings.field_sizes
        sim = BurstSimSettings(field_sizes=tuple(fields))
    if task.pattern_bands and not isinstance(sim, PatternSimSettings):
        fields = sim.field_sizes if sim != SimSettings() else PatternSimSettings.field_sizes
        sim = PatternSimSettings(field_sizes=tuple(fields))
    stores = None
    if fine_tune_store is not None:
        given = [fine_tune_store] if isinstance(fine_tune_store, str | Path) else fine_tune_store
        stores = fine_tune_stores(task, given)
    elif cluster_workers is not None or scheduler is not None:
        raise ValueError(
            "--workers and --scheduler reconstruct fine-tuning targets: add --fine-tune"
        )
    cluster = _Cluster(cluster_workers, scheduler)
    return _train(task, Path(out), settings, sim, resume, init_from, progress, stores, cluster)


@dataclass(frozen=True)
class _Cluster:
    """Where fine-tuning targets are reconstructed."""

    workers: int | None = None
    scheduler: str | None = None


def _store_stream(
    task: Task,
    stores: list[Path],
    out: Path,
    cluster: _Cluster,
    patch: int,
    seed: int,
    multiple: int,
    progress: bool,
) -> tuple[ManyStorePairs, dict[str, Any] | None]:
    """Fine-tuning pairs from ``stores``; SIM tasks' targets made (or reused) first."""
    from srlive.learn.targets import prepare_targets, targets_dir

    targets = None
    if task.name != "dl-denoise":
        targets = prepare_targets(
            stores, targets_dir(out), cluster.workers, cluster.scheduler, progress=progress
        )
    stream = ManyStorePairs(
        task, stores, patch, targets.paths if targets else None, seed=seed, multiple=multiple
    )
    return stream, targets.info() if targets else None


def _train(
    task: Task,
    out: Path,
    settings: TrainSettings,
    sim: SimSettings | BurstSimSettings | PatternSimSettings,
    resume: bool,
    init_from: str | Path | None,
    progress: bool,
    stores: list[Path] | None,
    cluster: _Cluster,
) -> dict[str, Any]:
    out.parent.mkdir(parents=True, exist_ok=True)
    ckpt_path = out.with_suffix(".ckpt")
    torch.manual_seed(settings.seed)
    model = build_model(
        task,
        settings.width,
        settings.uncertainty,
        settings.stem,
        settings.context_levels,
    )
    if settings.patch % model.config.size_multiple:
        raise ValueError(
            f"patch {settings.patch} is not a multiple of {model.config.size_multiple} "
            f"(stem {settings.stem}, {settings.context_levels} context levels)"
        )
    init_info = None
    if init_from is not None:
        start_model, start_task, init_info = load_weights(init_from)
        if start_task.name != task.name:
            raise ValueError(f"{init_from}: weights of {start_task.name}, not {task.name}")
        start, built = start_model.config, model.config
        other_shape = (start.width, start.stem) != (built.width, built.stem)
        if other_shape or start.context_levels not in (0, built.context_levels):
            raise ValueError(
                f"{init_from}: a width-{start.width}, stem-{start.stem} model with "
                f"{start.context_levels} context levels; train it with --width {start.width} "
                f"--stem {start.stem} --context-levels {start.context_levels}"
            )
        _load_start(model, start_model)
    if settings.error_head_only:
        if init_from is None or model.error_head is None:
            raise ValueError("--error-head-only fine-tunes the error head of --init-from weights")
        for name, parameter in model.named_parameters():
            parameter.requires_grad_(name.startswith("error_head."))
    trainable = [p for p in model.parameters() if p.requires_grad]
    optimiser = torch.optim.AdamW(trainable, lr=settings.lr, weight_decay=1e-4)
    schedule = torch.optim.lr_scheduler.OneCycleLR(
        optimiser, settings.lr, total_steps=settings.steps, pct_start=0.1
    )
    identity = _identity(task, model, settings, sim, init_from, stores)
    step, elapsed = 0, 0.0
    losses: list[float] = []
    if resume and (ckpt_path.exists() or ckpt_path.is_symlink()):
        step, elapsed, losses = _resume(ckpt_path, identity, model, optimiser, schedule)
    targets_info = None
    stream: ManyStorePairs | PairStream
    if stores is not None:
        stream, targets_info = _store_stream(
            task,
            stores,
            out,
            cluster,
            settings.patch,
            settings.seed + step,
            model.config.size_multiple,
            progress,
        )
    else:
        stream = PairStream(task, settings.patch, seed=settings.seed * 7919 + step, settings=sim)
    # one worker process simulates the next batches while this one trains
    loader = torch.utils.data.DataLoader(
        stream,
        batch_size=settings.batch,
        num_workers=settings.workers,
        prefetch_factor=4 if settings.workers else None,
    )
    batches = iter(loader)
    model.train()
    bar = tqdm(
        total=settings.steps,
        initial=step,
        desc=f"train {task.name}",
        unit="step",
        disable=not progress,
    )
    started = time.perf_counter() - elapsed
    use_bf16 = settings.bf16 and bf16_supported()
    autocast = torch.autocast("cpu", torch.bfloat16, enabled=use_bf16)
    while step < settings.steps:
        x, y, span = next(batches)
        with autocast:
            prediction = model(x)
        loss = _loss(
            prediction.float(), y, settings.ssim_weight, span, not settings.error_head_only
        )
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        # a rare batch (a bright field at the learning-rate peak) must not throw the model
        # off: without clipping, single steps diverged and left it stuck at the blurred base
        torch.nn.utils.clip_grad_norm_(trainable, settings.clip_grad_norm)
        optimiser.step()
        schedule.step()
        step += 1
        losses.append(float(loss.detach()))
        bar.update(1)
        bar.set_postfix(loss=f"{sum(losses[-50:]) / len(losses[-50:]):.4f}")
        if step % settings.checkpoint_every == 0 or step == settings.steps:
            elapsed = time.perf_counter() - started
            state = {"identity": identity, "step": step, "elapsed": elapsed, "losses": losses}
            save_checkpoint(ckpt_path, model, optimiser, schedule, state)
    bar.close()
    metadata = {
        "task": task.name,
        "description": task.description,
        "train": asdict(settings),
        "sim": asdict(sim),
        "steps": step,
        "wall_s": round(time.perf_counter() - started, 1),
        "precision": "bfloat16" if use_bf16 else "float32",
        "machine": machine_description(),
        "final_loss": round(sum(losses[-100:]) / max(1, len(losses[-100:])), 5),
        "parameters": count_parameters(model),
        "init_from": str(init_from) if init_from else None,
        "init_info": init_info,
        "fine_tune_store": [str(s) for s in stores] if stores else None,
        "fine_tune_targets": targets_info,
    }
    save_weights(model.eval(), task, out, metadata)
    return metadata
