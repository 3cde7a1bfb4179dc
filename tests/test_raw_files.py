"""Reading raw SIM frames from TIFF, ImageJ, OME-TIFF, MRC and .npy files."""

from __future__ import annotations

from pathlib import Path

import mrcfile
import numpy as np
import pytest
import tifffile

from srlive.io.raw_files import RawFileError, group_sets, read_raw_frames

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
ER_1 = SHARED / "data" / "real-sim" / "tsim-er" / "ER_1.tif"


def _stack(*shape: int, dtype=np.uint16) -> np.ndarray:
    """Frames whose first pixel is their index in file order; the rest varies too."""
    data = np.arange(np.prod(shape), dtype=np.int64).reshape(shape) % 1000
    frames = data.reshape(-1, *shape[-2:])
    frames[:, 0, 0] = np.arange(frames.shape[0])
    return data.astype(dtype)


def test_plain_multipage_tiff(tmp_path):
    data = _stack(5, 8, 10)
    path = tmp_path / "plain.tif"
    for frame in data:
        tifffile.imwrite(path, frame, append=True, photometric="minisblack", metadata=None)
    raw = read_raw_frames(path)
    assert raw.format == "tiff" and raw.pixel_nm is None and raw.source == str(path)
    assert raw.frames.dtype == np.uint16 and raw.n_frames == 5
    np.testing.assert_array_equal(raw.frames, data)


def test_imagej_hyperstack_flattens_in_file_order(tmp_path):
    data = _stack(2, 3, 8, 10)  # T, C
    path = tmp_path / "hyper.tif"
    tifffile.imwrite(
        path,
        data,
        imagej=True,
        resolution=(1 / 0.0625, 1 / 0.0625),
        metadata={"axes": "TCYX", "spacing": 0.2, "unit": "um"},
    )
    raw = read_raw_frames(path)
    assert raw.format == "imagej-tiff" and raw.axes == "TCYX"
    assert raw.frames.shape == (6, 8, 10) and raw.frames.dtype == np.uint16
    assert raw.frames[:, 0, 0].tolist() == list(range(6))  # t0c0, t0c1, t0c2, t1c0, …
    np.testing.assert_array_equal(raw.frames, data.reshape(6, 8, 10))
    assert raw.pixel_nm == pytest.approx(62.5)


def test_imagej_without_metric_unit_has_no_pixel_size(tmp_path):
    path = tmp_path / "inch.tif"
    tifffile.imwrite(path, _stack(3, 8, 10), imagej=True, metadata={"axes": "ZYX"})
    assert read_raw_frames(path).pixel_nm is None


def test_ome_tiff_with_physical_size(tmp_path):
    data = _stack(3, 2, 8, 10, dtype=np.float32)  # Z, C
    path = tmp_path / "scope.ome.tif"
    metadata = {"axes": "ZCYX", "PhysicalSizeX": 0.08, "PhysicalSizeXUnit": "µm"}
    tifffile.imwrite(path, data, ome=True, metadata=metadata)
    raw = read_raw_frames(path)
    assert raw.format == "ome-tiff" and raw.axes == "ZCYX"
    assert raw.frames.shape == (6, 8, 10) and raw.frames.dtype == np.float32
    np.testing.assert_array_equal(raw.frames, data.reshape(6, 8, 10))
    assert raw.pixel_nm == pytest.approx(80.0)


def test_compressed_big_endian_tiff_is_read_into_native_order(tmp_path):
    data = _stack(4, 8, 10)
    path = tmp_path / "zlib.tiff"
    tifffile.imwrite(path, data, compression="zlib", byteorder=">", photometric="minisblack")
    raw = read_raw_frames(path)
    assert raw.frames.dtype == np.dtype("=u2")
    np.testing.assert_array_equal(raw.frames, data)


def test_mrc_with_voxel_size(tmp_path):
    data = _stack(4, 8, 10, dtype=np.float32)
    path = tmp_path / "stack.mrc"
    with mrcfile.new(path) as mrc:
        mrc.set_data(data)
        mrc.voxel_size = 650.0  # Å
    raw = read_raw_frames(path)
    assert raw.format == "mrc" and raw.axes == "ZYX"
    assert raw.pixel_nm == pytest.approx(65.0)
    np.testing.assert_array_equal(raw.frames, data)


def test_mrc_without_voxel_size_and_uint16(tmp_path):
    path = tmp_path / "stack.mrc"
    with mrcfile.new(path) as mrc:
        mrc.set_data(_stack(2, 8, 10))
    raw = read_raw_frames(path)
    assert raw.pixel_nm is None and raw.frames.dtype == np.uint16


def test_npy_is_memory_mapped(tmp_path):
    data = _stack(3, 3, 8, 10)
    path = tmp_path / "raw.npy"
    np.save(path, data)
    raw = read_raw_frames(path)
    assert raw.format == "npy" and raw.axes == "QQYX" and raw.pixel_nm is None
    assert isinstance(raw.frames, np.memmap) and not raw.frames.flags.writeable
    np.testing.assert_array_equal(raw.frames, data.reshape(9, 8, 10))


def test_single_frame_is_one_frame(tmp_path):
    path = tmp_path / "one.npy"
    np.save(path, _stack(8, 10))
    assert read_raw_frames(path).frames.shape == (1, 8, 10)


def _bad_files(tmp_path: Path) -> dict[str, tuple[Path, str]]:
    cases: dict[str, tuple[Path, str]] = {}

    def case(name: str, fragment: str) -> Path:
        path = tmp_path / name
        cases[name] = (path, fragment)
        return path

    case("raw.czi", "unknown raw file type").write_bytes(b"\0" * 64)
    case("junk.tif", "cannot read the TIFF").write_bytes(b"hello, not a tiff" * 8)
    good = tmp_path / "good.tif"
    tifffile.imwrite(good, _stack(6, 64, 64), photometric="minisblack")
    case("truncated.tif", "damaged or truncated TIFF").write_bytes(good.read_bytes()[:9000])
    packed = tmp_path / "packed.tif"
    tifffile.imwrite(packed, _stack(6, 64, 64), compression="zlib", photometric="minisblack")
    cut = packed.read_bytes()
    # half the pages lost: tifffile alone would return the pages it still finds
    case("cut_pages.tif", "damaged or truncated TIFF").write_bytes(cut[: len(cut) // 2])
    case("cut_data.tif", "cannot read the TIFF").write_bytes(cut[:-300])
    hyper = tmp_path / "hyper.tif"
    tifffile.imwrite(hyper, _stack(3, 9, 16, 16), imagej=True, metadata={"axes": "ZCYX"})
    case("cut_hyper.tif", "damaged or truncated TIFF").write_bytes(hyper.read_bytes()[:5000])
    tifffile.imwrite(case("rgb.tif", "colour"), np.zeros((8, 8, 3), np.uint8), photometric="rgb")
    tifffile.imwrite(case("complex.tif", "complex"), np.zeros((2, 8, 8), np.complex64))
    nan = np.ones((2, 8, 8), np.float32)
    nan[1, 3, 4] = np.nan
    tifffile.imwrite(case("nan.tif", "NaN"), nan, photometric="minisblack")
    np.save(case("inf.npy", "infinite"), np.array([[[1.0, np.inf]]]))
    np.save(case("bool.npy", "not numeric"), np.ones((2, 4, 4), bool))
    np.save(case("text.npy", "not numeric"), np.array([["a", "b"], ["c", "d"]]))
    np.save(case("pickled.npy", "cannot read as .npy"), np.array([{}, None], dtype=object))
    np.save(case("line.npy", "expected images"), np.arange(5.0))
    np.save(case("empty.npy", "no pixels"), np.zeros((0, 8, 8), np.uint16))
    case("junk.mrc", "cannot read as MRC").write_bytes(b"x" * 2048)
    case("priism.dv", "not MRC").write_bytes(b"\0" * 2048)
    return cases


def test_bad_files_raise_one_line_naming_the_file(tmp_path, caplog):
    for name, (path, fragment) in _bad_files(tmp_path).items():
        with pytest.raises(RawFileError) as info:
            read_raw_frames(path)
        message = str(info.value)
        assert "\n" not in message, name
        assert message.startswith(str(path)), message
        assert fragment in message, message
    assert not [r for r in caplog.records if r.name == "tifffile"]  # held back, not printed


def test_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="absent.tif"):
        read_raw_frames(tmp_path / "absent.tif")


def test_group_sets_is_a_view_and_checks_the_count():
    frames = _stack(18, 4, 6)
    sets = group_sets(frames, 9)
    assert sets.shape == (2, 9, 4, 6) and np.shares_memory(sets, frames)
    assert sets[1, 0, 0, 0] == 9
    with pytest.raises(ValueError, match=r"^f\.tif: 18 frame\(s\) .* sets of 4 \(2 left over\)$"):
        group_sets(frames, 4, source="f.tif")


@pytest.mark.skipif(not ER_1.is_file(), reason="real SIM data (../shared) not present")
def test_real_er_hyperstack():
    raw = read_raw_frames(ER_1)
    assert raw.frames.shape == (27, 112, 512) and raw.frames.dtype == np.uint16
    assert raw.format == "imagej-tiff" and raw.axes == "ZCYX"
    assert raw.pixel_nm is None  # calibrated in inches at 1 pixel/inch: no size
    with tifffile.TiffFile(ER_1) as tif:  # file order: t0f0 … t0f8, t1f0 …
        np.testing.assert_array_equal(raw.frames[10], tif.pages[10].asarray())
    sets = group_sets(raw.frames, 9)
    assert sets.shape == (3, 9, 112, 512)
    np.testing.assert_array_equal(sets[1, 1], raw.frames[10])
