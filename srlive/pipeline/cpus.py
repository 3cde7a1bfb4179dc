"""CPU partition (opt-in): acquisition threads on one core, inference on the others (Linux).

On a small machine the simulated camera, the engine and the store writer would otherwise
preempt the model's threads (and the model theirs) on every core. Pinning gives the
acquisition side (the session thread, which the camera's sequence thread inherits, and the
store writer) the first allowed core and the inference process (and the intra-op threads
it starts) the rest, so each keeps its own cores. Only with inference in its own process:
threads sharing one GIL must not be split across cores (a GIL holder preempted on a busy
core stalls the others). Elsewhere than Linux, or with one core, this does nothing.
"""

from __future__ import annotations

import os


def allowed() -> list[int]:
    """The cores this process may run on."""
    if hasattr(os, "sched_getaffinity"):
        return sorted(os.sched_getaffinity(0))
    return list(range(os.cpu_count() or 1))


def partition() -> tuple[set[int], set[int]] | None:
    """(acquisition cores, inference cores), or None when there is nothing to split."""
    cores = allowed()
    if len(cores) < 2 or not hasattr(os, "sched_setaffinity"):
        return None
    return {cores[0]}, set(cores[1:])


def pin_current_thread(role: str) -> bool:
    """Pin the calling thread (and the threads it starts) to the role's cores."""
    split = partition()
    if split is None:
        return False
    acquisition, inference = split
    try:
        os.sched_setaffinity(0, acquisition if role == "acquisition" else inference)
    except OSError:
        return False
    return True


def lower_current_thread_priority(nice: int) -> bool:
    """Raise the calling thread's nice value by ``nice`` (Linux; threads it starts inherit
    it): the simulated camera then yields the CPU to inference when the machine is busy."""
    if nice <= 0 or not hasattr(os, "setpriority"):
        return False
    import threading

    try:
        tid = threading.get_native_id()
        os.setpriority(os.PRIO_PROCESS, tid, os.getpriority(os.PRIO_PROCESS, tid) + nice)
    except OSError:
        return False
    return True
