"""FRC and decorrelation analysis behave as resolution measures."""

import numpy as np
from scipy import ndimage

from srlive.recon.resolution import decorrelation_resolution_nm, frc_curve, frc_resolution_nm


def _texture(seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return ndimage.gaussian_filter(rng.random((256, 256)), 1.0) * 100


def test_frc_of_identical_images_is_one_and_of_noise_is_zero():
    img = _texture()
    _, same = frc_curve(img, img, 10.0)
    assert np.allclose(same[1:], 1.0, atol=1e-6)
    rng = np.random.default_rng(1)
    _, noise = frc_curve(rng.normal(size=(256, 256)), rng.normal(size=(256, 256)), 10.0)
    assert abs(noise[5:].mean()) < 0.02


def test_frc_resolution_tracks_noise():
    truth = _texture()
    rng = np.random.default_rng(2)
    low = [truth + rng.normal(0, 1, truth.shape) for _ in range(2)]
    high = [truth + rng.normal(0, 20, truth.shape) for _ in range(2)]
    assert frc_resolution_nm(*low, 10.0) < frc_resolution_nm(*high, 10.0)


def test_decorrelation_tracks_blur():
    rng = np.random.default_rng(3)
    points = np.zeros((256, 256))
    points[rng.integers(0, 256, 400), rng.integers(0, 256, 400)] = 100
    values = []
    for sigma in (1.0, 2.0, 4.0):
        img = ndimage.gaussian_filter(points, sigma) + rng.normal(0, 0.05, points.shape)
        values.append(decorrelation_resolution_nm(img, 10.0))
    assert values[0] < values[1] < values[2]


def test_frc_beyond_a_band_limit_is_empty_not_one():
    """Two noise-free images of one band-limited field: beyond the optical cutoff the window
    leaks copies of their in-band structure, which the old floor (1e-9 of the largest ring
    sum, windowed) read as FRC 1: 132 nm for a 171 nm band limit, 88 nm on the 2x grid."""
    from simulators.optics import blur, otf_2d
    from srlive.recon.wiener_sim import fourier_upsample

    rng = np.random.default_rng(0)
    points = np.zeros((128, 128), np.float32)
    points[rng.integers(0, 128, 200), rng.integers(0, 128, 200)] = 1.0
    image = blur(points, otf_2d(points.shape, 65.0, 1.49, 510.0))  # cutoff 2NA/λ
    band_limit_nm = 510.0 / (2 * 1.49)
    for img, pixel in ((image, 65.0), (fourier_upsample(image), 32.5)):
        freq, frc = frc_curve(img, img.copy(), pixel)
        assert np.all(frc[freq > 1.05 / band_limit_nm] == 0.0)
        assert np.all(frc[(freq > 0) & (freq < 0.8 / band_limit_nm)] > 0.99)
        assert frc_resolution_nm(img, img.copy(), pixel) > 0.95 * band_limit_nm
