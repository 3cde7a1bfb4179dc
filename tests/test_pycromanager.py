"""The pycromanager route: the snake_case core pycromanager's Python backend builds.

mmpycorex (pycromanager's core launcher) makes its Python backend by subclassing pymmcore's
CMMCore with every method renamed to snake_case and by attaching ``pop_next_tagged_image``.
The same construction over pymmcore-plus's UniMMCore (so the simulated Python devices load)
exercises srlive's pycromanager code path against real devices.
"""

from __future__ import annotations

import types

import numpy as np
import pytest
from mmpycorex import launcher

from srlive.acquisition.engine import Engine, SetPlan
from srlive.acquisition.modalities import get_modality, slm_images
from srlive.hardware.connect import as_camel_case, connect, new_core
from srlive.hardware.pycro import SnakeCaseCore, camel_to_snake


def _pycromanager_style_core(profile):
    base = type(new_core())
    methods = {}
    for klass in reversed(base.__mro__):
        for name, value in vars(klass).items():
            if callable(value) and not name.startswith("_"):
                methods[launcher._camel_to_snake(name)] = value
    snake_cls = type(base.__name__ + "SnakeCase", (base,), methods)
    core = snake_cls()
    core.load_system_configuration(str(profile.config_path))
    core.pop_next_tagged_image = types.MethodType(launcher.pop_next_tagged_image, core)
    return core


@pytest.fixture
def snake_scope(profile):
    snake = _pycromanager_style_core(profile)
    scope = connect(profile, core=snake)
    scope.core.setProperty("SimHub", "FrameSize", 64)
    scope.core.setProperty("SimHub", "Motion", "Off")
    yield scope
    scope.make_safe()
    snake.unload_all_devices()


def test_camel_to_snake_matches_pycromanager():
    for name in (
        "getImageWidth",
        "setSLMImage",
        "getXYPosition",
        "popNextImageMD",
        "startSequenceAcquisition",
        "loadSLMSequence",
    ):
        assert camel_to_snake(name) == launcher._camel_to_snake(name)


def test_snake_case_core_is_wrapped(snake_scope):
    assert isinstance(snake_scope.core, SnakeCaseCore)
    assert as_camel_case(snake_scope.core) is snake_scope.core
    assert "Camera" in snake_scope.core.getLoadedDevices()


def test_engine_runs_sim_sets_through_the_pycromanager_api(snake_scope):
    modality = get_modality("sim9")
    images = tuple(slm_images(snake_scope.profile, modality, 488, snake_scope.slm_shape))
    plans = [
        SetPlan(
            index=t,
            t=t,
            modality=modality,
            line=488,
            power_mw=20.0,
            exposure_ms=2.0,
            slm_images=images,
            n_frames=9,
        )
        for t in range(2)
    ]
    engine = Engine(snake_scope)
    sets = []
    engine.events.set_complete.connect(lambda plan, frames, metas: sets.append((frames, metas)))
    stats = engine.run(plans)
    assert stats.frames_acquired == 18 and stats.sets_completed == 2
    frames, metas = sets[0]
    assert frames.shape == (9, 64, 64) and frames.dtype == np.uint16
    assert frames.astype(float).mean() > 105  # lit through the snake_case laser calls
    assert [m["slm_pattern"] for m in metas] == list(range(9))
    assert all("camera_crc" in m for m in metas)  # tags came through pop_next_tagged_image
    assert not snake_scope.laser_is_on(488)
