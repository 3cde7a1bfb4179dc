"""`srlive bench smlm` (issue 18 must-show): accuracy against ground truth at two emitter
densities, and Picasso side by side when its environment is set up."""

from __future__ import annotations

import json

import pytest

from srlive.bench.smlm import DEFAULT_PEER_PYTHON, SMLMBenchOptions, bench_smlm
from srlive.cli import main


def test_bench_without_the_peer_scores_srlive_at_two_densities(tmp_path):
    missing = str(tmp_path / "no-python")
    result = bench_smlm(SMLMBenchOptions(size=32, frames=60, repeats=1, peer_python=missing))
    assert result["peer"]["status"].startswith("not set up")
    low, high = result["datasets"]
    assert (low["density"], high["density"]) == ("low", "high")
    assert high["emitters_per_um2"] > 3 * low["emitters_per_um2"]
    for entry in (low, high):
        ours = entry["srlive"]
        assert 0.2 < ours["jaccard"] <= 1 and ours["frames_per_s"] > 0
        assert ours["rmse_lateral_nm"] < 50 and ours["ideal_crlb_median_nm"] > 0
        assert 0.8 < ours["rmse_in_crlb_units"] < 4 and ours["reported_crlb_median_nm"] > 0
        assert ours["bright_rmse_lateral_nm"] < 3 * ours["bright_ideal_crlb_rms_nm"]
        assert "picasso" not in entry
    three_d = result["astigmatic_3d"]
    assert three_d["calibrated_range_nm"][0] < -150 < 150 < three_d["calibrated_range_nm"][1]
    assert three_d["rmse_z_nm"] < 120 and three_d["median_uncertainty_z_nm"] > 0
    json.dumps(result, allow_nan=False)  # strict JSON


def test_cli_refuses_bad_sizes(capsys):
    assert main(["bench", "smlm", "--frames", "2"]) == 2
    assert "--frames" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["bench", "smlm", "--size", "0"])
    assert "must be positive" in capsys.readouterr().err


@pytest.mark.slow
@pytest.mark.skipif(not DEFAULT_PEER_PYTHON.is_file(), reason="Picasso peer env not set up")
def test_picasso_runs_on_the_same_frames():
    result = bench_smlm(SMLMBenchOptions(size=32, frames=40, repeats=1))
    assert result["peer"]["status"] == "ran" and result["peer"]["version"] == "0.11.3"
    for entry in result["datasets"]:
        peer = entry["picasso"]
        assert peer["localizations"] > 0 and peer["min_net_gradient"] > 0
        assert abs(peer["bias_x_nm"]) < 10  # its pixel-centre convention converted right
        assert entry["throughput_ratio"] > 0
