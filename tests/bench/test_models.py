"""``srlive bench models``: learned models' time per set at the precision asked for."""

from __future__ import annotations

import json

import pytest

from srlive.cli import main


@pytest.mark.parametrize(("precision", "dtype"), [("fp32", "float32"), ("bf16", "bfloat16")])
def test_bench_models_runs_at_the_precision_asked_for(capsys, precision, dtype):
    argv = ["bench", "models", "--model", "dl-sim3", "--size", "64", "--repeats", "1"]
    assert main([*argv, "--precision", precision]) == 0
    result = json.loads(capsys.readouterr().out)
    timing = result["models"]["dl-sim3"]
    assert timing["precision"] == dtype
    assert timing["with_confidence"]["ms_median"] > 0
    assert result["machine"].count(",") >= 2  # CPU, cores, vector units
