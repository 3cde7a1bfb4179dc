"""The benchmark package's rules: one module per benchmark, each with its own options;
nothing outside ``srlive.bench`` imports it except the CLI's lazy dispatch."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

from srlive.bench import BENCHMARKS
from srlive.bench.run import parser_for
from srlive.cli import main

ROOT = Path(__file__).resolve().parents[2]


def _bench_imports(path: Path) -> list[tuple[int, bool]]:
    """(line, at module level) of each import of srlive.bench in one file."""
    tree = ast.parse(path.read_text(), str(path))
    module_level = {id(node) for node in tree.body}
    found = []
    for node in ast.walk(tree):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
        if any(n == "srlive.bench" or n.startswith("srlive.bench.") for n in names):
            found.append((node.lineno, id(node) in module_level))
    return found


def test_nothing_but_the_cli_imports_the_benchmarks_and_it_lazily() -> None:
    offenders = []
    for path in sorted([*ROOT.glob("srlive/**/*.py"), *ROOT.glob("simulators/**/*.py")]):
        rel = path.relative_to(ROOT).as_posix()
        if rel.startswith("srlive/bench/"):
            continue
        for line, top_level in _bench_imports(path):
            if rel != "srlive/cli/bench.py" or top_level:
                offenders.append(f"{rel}:{line}")
    assert offenders == []


def test_the_cli_loads_only_the_registry_until_a_benchmark_runs() -> None:
    code = (
        "import sys; from srlive.cli import _build_parser; _build_parser(); "
        "print(sorted(m for m in sys.modules if m.startswith('srlive.bench')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "['srlive.bench']"


@pytest.mark.parametrize("name", list(BENCHMARKS))
def test_each_benchmark_has_its_own_options(name: str) -> None:
    parser, module = parser_for(name)
    assert module.__doc__ and callable(module.run)
    flags = {f for action in parser._actions for f in action.option_strings}
    assert {"-h", "--out"} <= flags
    others = {"storage": "--candidates", "optimizer": "--timepoints", "sim-real": "--reference"}
    for other, flag in others.items():
        assert (flag in flags) == (other == name), f"{name} has {flag}"


def test_help_shows_only_that_benchmarks_flags(capsys) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["bench", "storage", "--help"])
    assert exit_info.value.code == 0
    text = capsys.readouterr().out
    assert "srlive bench storage" in text and "--candidates" in text
    assert "--model" not in text and "--timepoints" not in text and "--window" not in text


def test_every_result_says_its_command_and_machine(tmp_path: Path, capsys) -> None:
    out = tmp_path / "r.json"
    assert main(["bench", "recon", "--size", "32", "--repeats", "1", "--out", str(out)]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert json.loads(out.read_text()) == printed
    assert printed["benchmark"] == "recon" and printed["ms_median"] > 0
    assert printed["command"] == f"srlive bench recon --size 32 --repeats 1 --out {out}"
    host = printed["host"]
    assert host["cpu_count"] >= 1 and isinstance(host["avx2"], bool)
    assert len(host["load_average_before"]) == 3


def test_bad_options_are_one_line_errors(capsys) -> None:
    assert main(["bench", "pipeline", "--window", "40"]) == 2
    assert "--window: only with --modality fluctuation" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_info:
        main(["bench", "camera", "--seconds", "0"])
    assert exit_info.value.code == 2
    assert "must be positive" in capsys.readouterr().err


def test_registered_modules_are_the_benchmark_modules() -> None:
    helpers = {"__init__", "run", "common", "live", "esrrf_params", "fluctuation_metrics"}
    helpers |= {"pipeline_fluctuation"}  # srlive bench pipeline --modality fluctuation
    helpers |= {"pipeline_smlm"}  # srlive bench pipeline --modality smlm
    modules = {p.stem for p in (ROOT / "srlive" / "bench").glob("*.py")} - helpers
    assert modules == {b.module for b in BENCHMARKS.values()}
