"""The registry of reconstruction methods: one record per implemented method, used everywhere
a method is named (CLI, protocols, acquisition, offline, distributed, the Python API)."""

from __future__ import annotations

import numpy as np
import pytest

from srlive import reconstruct
from srlive.recon.fluctuation.method import FLUCTUATION_METHODS, FluctuationSettings
from srlive.recon.learned.geometry import Geometry
from srlive.recon.learned.weights_meta import WEIGHTS_DIR
from srlive.recon.methods import METHODS, MethodError, get_method
from srlive.recon.optics import SIMOptics
from srlive.recon.streaming import StreamContext

# a set each method takes: layout, structured
SETS = {
    "wiener-sim": ((3, 3), True),
    "dl-sim9": ((3, 3), True),
    "dl-sim3": ((3, 1), True),
    "dl-denoise": ((1, 1), False),
    "dl-wf2sr": ((1, 1), False),
    **{m: ((1, 10), False) for m in FLUCTUATION_METHODS},
    "localization": ((1, 10), False),
}


def test_only_implemented_methods_are_listed() -> None:
    assert set(METHODS) == set(SETS)  # no "srrf": nothing unimplemented
    assert {m for m, r in METHODS.items() if r.burst} == set(FLUCTUATION_METHODS)
    assert {m for m, r in METHODS.items() if r.learned} == {
        "dl-sim3",
        "dl-sim9",
        "dl-denoise",
        "dl-wf2sr",
    }
    assert {m for m, r in METHODS.items() if r.localizes} == {"localization"}
    with pytest.raises(MethodError, match="unknown reconstruction method 'srrf'"):
        get_method("srrf")


@pytest.mark.parametrize("name", list(SETS))
def test_each_method_builds_and_reconstructs_the_sets_it_takes(name: str) -> None:
    method = get_method(name)
    method.check()  # weights present for the learned ones
    layout, structured = SETS[name]
    shape = (32, 32)
    sim = layout[1] >= 3 and structured
    optics = SIMOptics(pixel_nm=65.0, na=1.49, emission_nm=510.0) if sim else None
    context = StreamContext(
        shape,
        layout,
        structured,
        100.0,
        Geometry(),
        optics,
        device="cpu",
        fluctuation=FluctuationSettings(window=10, step=10) if method.burst else None,
    )
    recon = method.build(context)
    frames = np.random.default_rng(0).integers(100, 400, (layout[0] * layout[1], *shape))
    image, _ = recon(frames.astype(np.uint16))
    up = recon.upscale
    assert image.shape == (up * 32, up * 32) and np.isfinite(image).all()
    if method.upscale is not None:
        assert up == method.upscale


def test_a_method_refuses_sets_it_cannot_take() -> None:
    with pytest.raises(MethodError, match="3 or more phases"):
        get_method("wiener-sim").picker((3, 1))
    with pytest.raises(MethodError, match="3x3"):
        get_method("dl-sim9").picker((3, 5))
    with pytest.raises(MethodError, match="uniform-light bursts"):
        get_method("esrrf").picker((3, 3), structured=True)
    frames = np.arange(9 * 4).reshape(9, 2, 2)
    np.testing.assert_array_equal(get_method("dl-sim3").picker((3, 3))(frames), frames[[0, 3, 6]])


def test_a_weights_file_is_the_method_of_its_task(tmp_path) -> None:
    path = tmp_path / "mine.safetensors"
    path.write_bytes((WEIGHTS_DIR / "dl-denoise.safetensors").read_bytes())
    method = get_method(str(path))
    assert method.learned and method.weights == str(path) and method.upscale == 1
    assert method.takes == METHODS["dl-denoise"].takes
    with pytest.raises(FileNotFoundError):
        get_method(str(tmp_path / "missing.safetensors"))
    frames = np.full((1, 16, 16), 200, np.uint16)
    out = reconstruct(frames, str(path), offset_adu=100.0, device="cpu")
    assert out.shape == (16, 16)
