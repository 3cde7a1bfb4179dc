"""``srlive run --headless`` where no Qt binding is installed (``pip install srlive``)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

from srlive.storage.omezarr import open_store

# run in a child so the blocked bindings cannot leak into other tests; the guard matters:
# the inference process's fork server imports the main module again
SCRIPT = textwrap.dedent(
    """
    import sys
    for name in ("PySide6", "PyQt6", "PyQt5", "PySide2"):
        sys.modules[name] = None  # as if not installed: importing it raises ImportError
    if __name__ == "__main__":
        from srlive.cli import main
        code = main(sys.argv[1:])
        loaded = [m for m in ("pyqtgraph", "qtpy.QtWidgets") if sys.modules.get(m) is not None]
        print("qt modules loaded:", loaded)
        sys.exit(code)
    """
)


def _run(tmp_path: Path, *args: str, display: bool) -> subprocess.CompletedProcess[str]:
    script = tmp_path / "no_qt.py"
    script.write_text(SCRIPT)
    env = {k: v for k, v in os.environ.items() if k not in ("QT_QPA_PLATFORM", "DISPLAY")}
    if display:
        env["DISPLAY"] = ":99"
    return subprocess.run(
        [sys.executable, str(script), *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )


def test_headless_run_needs_no_qt_binding(tmp_path: Path) -> None:
    out = tmp_path / "run.zarr"
    small = ["--set", "SimHub.FrameSize=64", "--frames", "2"]
    done = _run(tmp_path, "run", "--headless", "--out", str(out), *small, display=True)
    assert done.returncode == 0, done.stderr
    assert "qt modules loaded: []" in done.stdout
    assert open_store(out).sr_status() == {0: "reconstructed", 1: "reconstructed"}
    # a window asked for (a display, no --headless) without Qt: one line, not a traceback
    done = _run(tmp_path, "run", "--out", str(tmp_path / "w.zarr"), *small, display=True)
    assert done.returncode == 2
    err = done.stderr.strip().splitlines()
    assert len(err) == 1 and "srlive[qt]" in err[0] and "--headless" in err[0]
    assert not (tmp_path / "w.zarr").exists()
