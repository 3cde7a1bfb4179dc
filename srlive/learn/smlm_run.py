"""``srlive train dl-smlm``: train, evaluate on held-out data, and write the card.

The evaluation (:func:`srlive.learn.smlm_eval.evaluate_heldout`) and the machine go into the
weights' header beside the training record, then the card is written from that header.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from safetensors import safe_open

from srlive.learn.machine import machine_description
from srlive.learn.smlm_card import train_command, write_smlm_card
from srlive.learn.smlm_eval import evaluate_heldout, validate
from srlive.learn.smlm_train import SMLMTrainSettings, save_smlm_weights, train_smlm
from srlive.recon.smlm.learned import LearnedLocalizeSettings, load_smlm_weights


def weights_info(path: Path) -> dict[str, Any]:
    """The JSON ``info`` of a dl-smlm weights header."""
    with safe_open(str(path), framework="pt") as handle:
        return json.loads((handle.metadata() or {}).get("info", "{}"))


def evaluate_and_card(out: Path, frames: int = 200) -> dict[str, Any]:
    """Evaluate the weights at ``out`` on held-out bursts, keep that in their header and
    write the card beside them; returns the header's info."""
    model = load_smlm_weights(out)
    info = dict(model.info)
    info.pop("sigma_scale", None)
    save_smlm_weights(model.net, out, info)  # validated afresh
    validation = validate(str(out))
    info.update(
        threshold=validation["threshold"],
        sigma_scale=validation["sigma_scale"],
        validation=validation,
    )
    save_smlm_weights(model.net, out, info)
    info["evaluation"] = evaluate_heldout(LearnedLocalizeSettings(weights=str(out)), frames=frames)
    info["parameters"] = sum(p.numel() for p in model.net.parameters())
    info.setdefault("machine", machine_description())
    info["out"] = str(out)
    info["command"] = train_command(info.get("settings", {}), out, info.get("init_from"))
    save_smlm_weights(model.net, out, info)
    write_smlm_card(out, info)
    return info


def train_dl_smlm(
    out: Path,
    settings: SMLMTrainSettings,
    resume: bool = True,
    log: Any = print,
    init_from: Path | None = None,
) -> dict[str, Any]:
    """Train (resuming from a checkpoint, or from ``init_from``'s weights), evaluate, card."""
    info = train_smlm(out, settings, resume=resume, log=log, init_from=init_from)
    info["machine"] = machine_description()
    save_smlm_weights(load_smlm_weights(out).net, out, info)
    return evaluate_and_card(out)
