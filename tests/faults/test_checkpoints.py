"""Fault injection on training checkpoints (issue 13 item 5).

A checkpoint is safetensors plus JSON, never a pickle: a planted, garbage or truncated file
at ``OUT.ckpt`` is refused with one line and runs nothing; one of other settings is refused
naming what differs; a crash during a save leaves the previous checkpoint; an interrupted
run resumes where it stopped.
"""

from __future__ import annotations

import errno
import os
import shutil
from pathlib import Path

import pytest
import torch

from srlive.cli import main
from srlive.learn.train import TrainSettings, train_model
from srlive.recon.learned.weights_meta import WEIGHTS_DIR

# what `srlive train dl-denoise` + CLI_ARGS trains (the CLI's own defaults for the rest)
CLI_ARGS = ["--steps", "2", "--batch", "1", "--patch", "32", "--width", "8"]
CLI_SETTINGS = TrainSettings(steps=2, batch=1, patch=32, width=8)
# in this process (no data worker) and checkpointing every 2 steps
TINY = TrainSettings(steps=4, batch=1, patch=32, width=8, checkpoint_every=2, workers=0)


@pytest.fixture(scope="module")
def genuine(tmp_path_factory) -> Path:
    """A real checkpoint of `srlive train dl-denoise` with CLI_ARGS."""
    out = tmp_path_factory.mktemp("genuine") / "m.safetensors"
    train_model("dl-denoise", out, CLI_SETTINGS, progress=False)
    return out.with_suffix(".ckpt")


def _train(out: Path, *extra: str, model: str = "dl-denoise") -> int:
    return main(["train", model, *CLI_ARGS, *extra, "--out", str(out)])


def _one_error_line(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("srlive: error:"), err
    return err[0]


class _Plant:
    """Unpickling this creates ``marker``: what a planted checkpoint could do."""

    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self):
        return (exec, (f"open({self.marker!r}, 'w').close()",))


def test_a_planted_pickle_checkpoint_is_refused_and_never_runs(tmp_path, capsys) -> None:
    out, marker = tmp_path / "m.safetensors", tmp_path / "pwned"
    ckpt = out.with_suffix(".ckpt")
    torch.save({"model": _Plant(marker), "step": 1}, ckpt)
    torch.load(ckpt, weights_only=False)  # the plant is live: loading it as a pickle runs it
    assert marker.exists()
    marker.unlink()
    assert _train(out) == 2
    line = _one_error_line(capsys)
    assert f"checkpoint {ckpt} is damaged or not an srlive checkpoint" in line
    assert not marker.exists() and not out.exists() and ckpt.exists()


@pytest.mark.parametrize("damage", ["garbage", "truncated", "empty", "weights", "no-state"])
def test_a_damaged_checkpoint_gives_one_line(genuine, tmp_path, capsys, damage) -> None:
    out = tmp_path / "m.safetensors"
    ckpt = out.with_suffix(".ckpt")
    if damage == "garbage":
        ckpt.write_bytes(os.urandom(4096))
    elif damage == "truncated":
        ckpt.write_bytes(genuine.read_bytes()[: genuine.stat().st_size // 2])
    elif damage == "empty":
        ckpt.write_bytes(b"")
    elif damage == "weights":  # valid safetensors, but a model's weights, not a checkpoint
        shutil.copy(WEIGHTS_DIR / "dl-denoise.safetensors", ckpt)
    else:  # the header claims a checkpoint, the JSON state is cut short
        from safetensors.torch import save

        meta = {"format": "srlive-checkpoint/1", "state": '{"identity": {'}
        ckpt.write_bytes(save({"x": torch.zeros(2)}, metadata=meta))
    assert _train(out) == 2
    assert f"checkpoint {ckpt} is damaged or not an srlive checkpoint" in _one_error_line(capsys)
    assert not out.exists()


@pytest.mark.parametrize(
    ("model", "extra", "named"),
    [
        ("dl-denoise", ["--width", "12"], "width: 8 -> 12"),
        ("dl-denoise", ["--lr", "0.001"], "lr: 0.0007 -> 0.001"),
        ("dl-sim3", [], "task: 'dl-denoise' -> 'dl-sim3'"),
    ],
)
def test_a_checkpoint_of_other_settings_is_refused_naming_them(
    genuine, tmp_path, capsys, model, extra, named
) -> None:
    out = tmp_path / "m.safetensors"
    shutil.copy(genuine, out.with_suffix(".ckpt"))
    assert _train(out, *extra, model=model) == 2
    line = _one_error_line(capsys)
    assert "is for other settings" in line and named in line and "--no-resume" in line
    assert not out.exists()


def _interrupted(out: Path, monkeypatch, at_step: int = 3) -> None:
    """Train TINY and stop it with a KeyboardInterrupt in step ``at_step`` (a Ctrl-C)."""
    real, calls = torch.nn.utils.clip_grad_norm_, []

    def clip(*args, **kwargs):
        calls.append(1)
        if len(calls) == at_step:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    with monkeypatch.context() as patch:
        patch.setattr(torch.nn.utils, "clip_grad_norm_", clip)
        with pytest.raises(KeyboardInterrupt):
            train_model("dl-denoise", out, TINY, progress=False)


def test_an_interrupted_run_resumes_where_it_stopped(tmp_path, monkeypatch) -> None:
    from srlive.learn.checkpoint import read_checkpoint

    out = tmp_path / "m.safetensors"
    _interrupted(out, monkeypatch)
    stopped = read_checkpoint(out.with_suffix(".ckpt")).state
    assert stopped["step"] == 2 and len(stopped["losses"]) == 2 and not out.exists()
    meta = train_model("dl-denoise", out, TINY, progress=False)
    assert meta["steps"] == 4 and out.exists()
    state = read_checkpoint(out.with_suffix(".ckpt")).state
    assert state["step"] == 4 and state["losses"][:2] == stopped["losses"]


def test_a_crash_during_a_save_keeps_the_previous_checkpoint(tmp_path, monkeypatch) -> None:
    from srlive.learn.checkpoint import read_checkpoint

    out = tmp_path / "m.safetensors"
    ckpt = out.with_suffix(".ckpt")
    _interrupted(out, monkeypatch)
    before = ckpt.read_bytes()
    real_write = os.write

    def disk_fills(fd: int, data) -> int:  # half of what is asked is written, then ENOSPC
        real_write(fd, bytes(data[: max(1, len(data) // 2)]))
        raise OSError(errno.ENOSPC, "No space left on device")

    with monkeypatch.context() as patch:
        patch.setattr(os, "write", disk_fills)
        with pytest.raises(OSError, match="No space left"):
            train_model("dl-denoise", out, TINY, progress=False)  # resumes, fails saving step 4
    assert ckpt.read_bytes() == before and read_checkpoint(ckpt).state["step"] == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.ckpt"]  # no temporary left over
    assert train_model("dl-denoise", out, TINY, progress=False)["steps"] == 4
