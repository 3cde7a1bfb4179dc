"""Shared fixtures: a real pymmcore-plus UniMMCore loaded with the simulated microscope."""

from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import pytest

from srlive.hardware.connect import connect
from srlive.profiles import load_profile


@pytest.fixture
def profile():
    return load_profile("sim_default")


@pytest.fixture
def scope(profile):
    """The default simulated microscope at 128×128, static sample, through a real core."""
    microscope = connect(profile)
    core = microscope.core
    core.setProperty("SimHub", "FrameSize", 128)
    core.setProperty("SimHub", "Motion", "Off")
    yield microscope
    microscope.make_safe()
    core.unloadAllDevices()


@pytest.fixture
def core(scope):
    return scope.core


@pytest.fixture(scope="session")
def make_sim9_store():
    """``make_sim9_store(path, n_sets, size, seed=0) -> path``: a small simulated sim9 store."""
    from simulators.stores import synthetic_sim_store

    return synthetic_sim_store


@pytest.fixture(scope="module")
def segments_field():
    """A prior-free field of segments, 96² camera pixels, at full and 10 % light (the learned
    SIM models' pattern-use tests)."""
    from simulators.sim_fields import prior_free_density
    from srlive.learn.eval_fields import make_field

    density = prior_free_density("segments", (192, 192), 32.5, seed=11, density=6.0)
    return make_field("segments", 96, seed=11, fractions=(1.0, 0.1), density=density)
