"""How many threads the reconstructions' FFTs use.

``SRLIVE_FFT_WORKERS`` (default: every core, -1) lets several reconstruction processes share
a machine without each starting a thread per core (the Dask workers of
:mod:`srlive.recon.distributed` get ``cores // workers``).
"""

from __future__ import annotations

import os


def _from_env() -> int:
    value = os.environ.get("SRLIVE_FFT_WORKERS", "-1")
    try:
        return int(value) if int(value) != 0 else -1
    except ValueError:
        return -1


FFT_WORKERS = _from_env()
