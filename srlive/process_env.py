"""Environment for the worker processes srlive starts (inference child, Dask workers).

A fresh interpreter's glibc returns freed memory to the system eagerly (Dask's workers even
more: a 64 kB trim threshold), so every reconstruction's multi-megabyte temporaries
page-fault afresh. Raising the mmap and trim thresholds keeps freed memory for reuse:

* a 256² wiener-sim set in a Dask worker: 230 ms → 105 ms (840,000 → 8,400 page faults
  for 7 sets; the main process: 115 ms);
* dl-sim3 on a 512² set in the live pipeline's inference child: 54 → 45 ms.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager

HEAP_REUSE = {"MALLOC_MMAP_THRESHOLD_": str(2**27), "MALLOC_TRIM_THRESHOLD_": str(2**30)}


@contextmanager
def child_environ(values: Mapping[str, str]) -> Iterator[None]:
    """Set ``values`` in this process's environment while children start, then restore it."""
    saved = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
