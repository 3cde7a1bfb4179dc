"""``srlive bench sim-real`` on the real TIRF-SIM data in ../shared, without the peer."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from srlive.bench.sim_real import PEER_NOT_SET_UP, bench_sim_real
from srlive.io.real_sim import DEFAULT_REAL_INPUT, METRIC_PATH

pytestmark = pytest.mark.skipif(
    not (DEFAULT_REAL_INPUT.is_file() and METRIC_PATH.is_file()),
    reason="../shared real SIM data or agreement metric absent",
)


def test_sim_real_beats_widefield_without_peer(tmp_path: Path) -> None:
    result = bench_sim_real(
        repeats=2, peer_python=tmp_path / "no-venv" / "bin" / "python", synthetic_size=128
    )
    json.dumps(result)  # JSON-ready
    assert result["peer"] == PEER_NOT_SET_UP
    assert len(result["sets"]) == 3
    for entry in result["sets"]:
        ours, wf = entry["srlive"]["agreement"], entry["widefield"]["agreement"]
        assert ours["full"] > wf["full"]
        assert ours["highpass"] > wf["highpass"]
        assert len(entry["srlive"]["carriers"]) == 3
        assert all(c["found"] for c in entry["srlive"]["carriers"])
        assert entry["srlive"]["calibration_ms"] > 0
        assert entry["srlive"]["reconstruct_ms_median"] > 0
        assert "peer" not in entry and "ratios" not in entry
    assert result["synthetic"]["frame_shape"] == [128, 128]
    assert result["synthetic"]["calibration_ms"] > 0
    assert result["machine"]["cpu_count"] >= 1


def test_sim_real_missing_input_is_one_line(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="raw SIM file not found"):
        bench_sim_real(input_path=tmp_path / "none.tif", synthetic_size=None)


def test_cli_bad_reference_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    from srlive.cli import main

    code = main(["bench", "sim-real", "--reference", str(tmp_path / "none.tif")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert err[-1].startswith("srlive: error: reference image not found")
