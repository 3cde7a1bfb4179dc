"""Reconstruction in a child process, on sets that stay in shared memory.

Why a process: the simulated camera, the engine, the store writer and a GUI are Python code
that holds the GIL for much of its time; a model run on a thread of the same interpreter
waits for the GIL after every operator, which on this project's 2-core machine made it more
than twice as slow with the camera streaming. In its own process the model only competes
for CPU cores. The ring buffer lives in ``multiprocessing.shared_memory``, so a set is never
copied or pickled on its way to the model; only the SR image comes back (through a second
shared block, copied out once).

The child builds each reconstructor from its ``spec`` (``(factory, args)``, see
:mod:`srlive.recon.streaming`) the first time a series needs it, with ``threads``
intra-op threads.
"""

from __future__ import annotations

import math
import multiprocessing as mp
import os
import signal
import threading
import time
from multiprocessing import shared_memory
from multiprocessing.connection import Connection
from typing import Any

import numpy as np

from srlive.pipeline.cpus import pin_current_thread
from srlive.process_env import HEAP_REUSE, child_environ

READY_TIMEOUT_S = 300.0  # importing torch on a busy machine can take a while


def attach(name: str) -> shared_memory.SharedMemory:
    """Attach to the parent's shared block.

    Children of the ``forkserver``/``spawn`` contexts share the parent's resource tracker,
    so registering the name again is harmless and the parent's ``unlink`` stays the only one.
    """
    return shared_memory.SharedMemory(name=name)


def context() -> Any:
    """forkserver where available (children start fast and clean), else spawn.

    The fork server preloads torch and srlive's model code once per session, so every
    inference process after the first starts in a fraction of a second.
    """
    if "forkserver" not in mp.get_all_start_methods():
        return mp.get_context("spawn")
    ctx = mp.get_context("forkserver")
    ctx.set_forkserver_preload(["srlive.pipeline.process", "srlive.recon.learned.infer"])
    return ctx


def _serve(
    conn: Connection,
    ring_name: str,
    ring_shape: tuple[int, ...],
    result_name: str,
    result_size: int,
    threads: int | None,
    pin: bool = False,
) -> None:
    """The child: build reconstructors, run them on ring slots, answer through ``conn``."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent decides when this ends
    if pin:
        pin_current_thread("inference")  # before torch starts its threads
    if threads:
        import torch

        torch.set_num_threads(threads)
    ring_shm, result_shm = attach(ring_name), attach(result_name)
    ring = np.ndarray(ring_shape, np.uint16, buffer=ring_shm.buf)
    result = np.ndarray((result_size,), np.float32, buffer=result_shm.buf)
    recons: dict[int, Any] = {}
    conn.send(("ready", os.getpid()))
    try:
        while (msg := conn.recv()) is not None:
            try:
                conn.send(_handle(msg, recons, ring, result))
            except Exception as exc:
                conn.send(("error", f"{type(exc).__name__}: {exc}"))
    except (EOFError, KeyboardInterrupt):
        pass
    finally:
        del ring, result
        ring_shm.close()
        result_shm.close()


def _stats() -> dict[str, float | None]:
    """Peak memory of this (the inference) process: RSS and, when used, CUDA."""
    import resource
    import sys

    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    out: dict[str, float | None] = {
        "peak_rss_mb": peak / 2**20 if sys.platform == "darwin" else peak / 1024,
        "cuda_peak_mb": None,
    }
    torch = sys.modules.get("torch")
    if torch is not None and torch.cuda.is_available() and torch.cuda.is_initialized():
        out["cuda_peak_mb"] = torch.cuda.max_memory_allocated() / 2**20
    return out


def _handle(
    msg: tuple, recons: dict[int, Any], ring: np.ndarray, result: np.ndarray
) -> tuple[Any, ...]:
    if msg[0] == "stats":
        return ("stats", _stats())
    if msg[0] == "build":
        _, key, (factory, args) = msg
        recons[key] = factory(*args)
        return ("built", key)
    _, key, slot, n_frames = msg
    recon = recons[key]
    start = time.perf_counter()
    # one slot's set, or a window of sets (a list of slots, oldest first) as one burst
    frames = ring[slot, :n_frames] if isinstance(slot, int) else _window(ring, slot, n_frames)
    image, confidence = recon(frames)
    recon_ms = (time.perf_counter() - start) * 1000.0
    image = np.asarray(image, np.float32)
    result[: image.size] = image.ravel()
    child_extra = getattr(recon, "child_extra", None)
    extra: dict[str, Any] = child_extra() if child_extra is not None else {}
    error = getattr(recon, "last_error", None)
    if error is not None and 2 * image.size <= result.size:  # the error map after the image
        result[image.size : 2 * image.size] = np.asarray(error, np.float32).ravel()
        extra["error"] = True
    return ("ok", image.shape, float(confidence), recon_ms, extra)


def _window(ring: np.ndarray, slots: list[int], n_frames: int) -> np.ndarray:
    """The frames of ring slots ``slots`` in order, as one (len·n_frames, H, W) burst."""
    return ring[slots, :n_frames].reshape(-1, *ring.shape[-2:])


class InferenceProcess:
    """The parent's handle on the child: ``reconstruct(recon, slot)`` blocks (GIL released)."""

    def __init__(
        self,
        ring_shm: str,
        ring_shape: tuple[int, ...],
        threads: int | None,
        pin: bool = False,
        upscale: int = 2,
    ) -> None:
        h, w = ring_shape[-2:]
        # SR images up to ``upscale`` x finer, and a learned model's error map after each
        self.result_size = 2 * upscale * upscale * h * w
        self._result = shared_memory.SharedMemory(create=True, size=4 * self.result_size)
        self.result = np.ndarray((self.result_size,), np.float32, buffer=self._result.buf)
        ctx = context()
        self._conn, child = ctx.Pipe()
        self.proc = ctx.Process(
            target=_serve,
            args=(
                child,
                ring_shm,
                tuple(ring_shape),
                self._result.name,
                self.result_size,
                threads,
                pin,
            ),
            name="srlive-inference",
            daemon=True,
        )
        with child_environ(HEAP_REUSE):  # the fork server (started now if not yet) inherits it
            self.proc.start()
        child.close()
        self._lock = threading.Lock()
        self._keys: dict[int, int] = {}
        self._specs: list[Any] = []  # keep the reconstructors referenced: ids stay unique
        if not self._conn.poll(READY_TIMEOUT_S):
            self.close()
            raise RuntimeError("the inference process did not start")
        self._conn.recv()

    @property
    def pid(self) -> int | None:
        return self.proc.pid

    def _key(self, recon: Any) -> int:
        key = self._keys.get(id(recon))
        if key is None:
            key = len(self._specs)
            self._specs.append(recon)
            self._call(("build", key, recon.spec))
            self._keys[id(recon)] = key
        return key

    def _call(self, msg: tuple) -> tuple:
        with self._lock:  # one request and its answer at a time
            self._conn.send(msg)
            reply = self._conn.recv()
        if reply[0] == "error":
            raise RuntimeError(reply[1])
        return reply

    def reconstruct(
        self, recon: Any, slot: int | list[int], n_frames: int
    ) -> tuple[np.ndarray, float, float]:
        """Run ``recon`` (by its spec) on ring slot ``slot`` (or a window of slots) in the child.

        Returns the SR image (a copy), its confidence and the child's compute time (ms).
        """
        _, shape, confidence, recon_ms, extra = self._call(
            ("run", self._key(recon), slot, n_frames)
        )
        n = math.prod(shape)
        image = self.result[:n].reshape(shape).copy()
        if extra.pop("error", False):
            recon.last_error = self.result[n : 2 * n].reshape(shape).copy()
        if extra:
            recon.absorb_child(extra)  # what the child found (a SIM pattern, localisations)
        return image, confidence, recon_ms

    def stats(self) -> dict[str, float | None]:
        """The child's peak RSS and CUDA memory (MB); waits for a running reconstruction."""
        return self._call(("stats",))[1]

    def close(self, timeout: float = 10.0) -> None:
        """End the child and free the result block."""
        try:
            if self.proc.is_alive():
                self._conn.send(None)
            self.proc.join(timeout)
        except (OSError, BrokenPipeError):
            pass
        finally:
            if self.proc.is_alive():
                self.proc.terminate()
                self.proc.join(timeout)
            self._conn.close()
            del self.result
            self._result.close()
            self._result.unlink()
