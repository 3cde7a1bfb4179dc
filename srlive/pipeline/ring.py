"""A preallocated ring of complete-set slots shared by the engine, the writer and inference.

Every slot is one (max_frames, H, W) uint16 block allocated once. The engine claims a free
slot and copies each frame popped from the core straight into it (no per-frame or per-set
allocation); when the set completes, the slot is handed to its readers (the raw writer,
which must see every set, and the inference mailbox / display preview, which keep only the
newest). A slot is reused when the last reader releases it. When every slot is held, the
engine waits (back-pressure into the camera's own buffer) rather than overwrite a set the
writer has not stored yet.
"""

from __future__ import annotations

import threading
import time
import weakref
from dataclasses import dataclass, field
from multiprocessing import shared_memory
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from srlive.acquisition.engine import SetPlan
    from srlive.acquisition.writer import SeriesState

_LINGERING: list[shared_memory.SharedMemory] = []  # closed rings whose views are still held


def _unlink(shm: shared_memory.SharedMemory) -> None:
    """Remove a block's name (its memory goes when the last mapping does)."""
    try:
        shm.unlink()
    except FileNotFoundError:
        pass


class RingClosed(RuntimeError):
    """The ring was closed while waiting for a free slot."""


@dataclass
class SlotInfo:
    """Where a set in the ring belongs and what happened to it so far."""

    series: str
    t: int  # its time point in the series
    state: SeriesState  # the series' store and reconstructor
    stamps: dict[str, float]  # latency stamps (perf_counter): exposure_end, set_complete, ...
    dose: tuple[float, float | None] = (float("nan"), None)  # before the set, budget left
    window: list[Slot] | None = None  # a window of sets (oldest first) ending with this one
    window_sets: int = 0


@dataclass
class Slot:
    """One set in the ring: its frames (a view into the block) and what travels with it."""

    index: int
    block: np.ndarray  # (max_frames, H, W), allocated once
    n_frames: int = 0
    refs: int = 0
    plan: SetPlan | None = None
    metas: list[dict[str, Any]] = field(default_factory=list)
    info: SlotInfo | None = None  # set when the set completes

    @property
    def about(self) -> SlotInfo:
        """The set's :class:`SlotInfo` (a completed set has one)."""
        if self.info is None:
            raise RuntimeError(f"slot {self.index} holds no completed set")
        return self.info

    @property
    def frames(self) -> np.ndarray:
        """The set's frames, (n_frames, H, W) (a view: valid while the slot is held)."""
        return self.block[: self.n_frames]


class SetRing:
    """``n_slots`` preallocated set slots with reference-counted reuse (thread-safe).

    With ``shared=True`` the slots live in a ``multiprocessing.shared_memory`` block (named
    :attr:`shm_name`) that another process can map (the inference process).
    """

    def __init__(
        self,
        n_slots: int,
        max_frames: int,
        frame_shape: tuple[int, int],
        dtype: np.dtype | type = np.uint16,
        shared: bool = False,
    ) -> None:
        if n_slots < 2 or max_frames < 1:
            raise ValueError("a ring needs at least 2 slots of at least 1 frame")
        self.frame_shape = (int(frame_shape[0]), int(frame_shape[1]))
        self.max_frames = int(max_frames)
        shape = (n_slots, self.max_frames, *self.frame_shape)
        self._shm: shared_memory.SharedMemory | None = None
        if shared:
            nbytes = int(np.prod(shape)) * np.dtype(dtype).itemsize
            self._shm = shared_memory.SharedMemory(create=True, size=nbytes)
            # unlinked by close(), else when the ring is collected or the interpreter exits:
            # a caller that fails before it can close the ring leaks no /dev/shm block
            self._unlink = weakref.finalize(self, _unlink, self._shm)
            self.buffer = np.ndarray(shape, dtype, buffer=self._shm.buf)
            self.buffer.fill(0)  # touch every page now, not on the hot path
        else:
            self.buffer = np.zeros(shape, dtype)
        self.slots = [Slot(i, self.buffer[i]) for i in range(n_slots)]
        self._free = list(range(n_slots - 1, -1, -1))  # a stack: the hottest slot is reused
        self._cond = threading.Condition()
        self._closed = False
        self.claims = 0  # slots handed to the producer
        self.waits = 0  # claims that had to wait for a slot to be released
        self.wait_s = 0.0  # total time producers waited

    @property
    def shm_name(self) -> str | None:
        return self._shm.name if self._shm is not None else None

    @property
    def n_slots(self) -> int:
        return len(self.slots)

    @property
    def nbytes(self) -> int:
        return int(self.buffer.nbytes)

    def free_count(self) -> int:
        with self._cond:
            return len(self._free)

    def fits(self, n_frames: int, frame_shape: tuple[int, int]) -> bool:
        return n_frames <= self.max_frames and tuple(frame_shape) == self.frame_shape

    def claim(self, n_frames: int, timeout: float | None = None) -> Slot:
        """A free slot for a set of ``n_frames`` (held once, by the producer)."""
        if n_frames > self.max_frames:
            raise ValueError(f"a set of {n_frames} frames does not fit slots of {self.max_frames}")
        with self._cond:
            if not self._free and not self._closed:
                self.waits += 1
                start = time.perf_counter()
                ok = self._cond.wait_for(lambda: self._free or self._closed, timeout)
                self.wait_s += time.perf_counter() - start
                if not ok:
                    raise TimeoutError("no ring slot was released in time")
            if self._closed:
                raise RingClosed("the ring is closed")
            slot = self.slots[self._free.pop()]
            slot.n_frames, slot.refs = int(n_frames), 1
            slot.plan, slot.metas, slot.info = None, [], None
            self.claims += 1
            return slot

    def slot_of(self, frames: np.ndarray) -> Slot:
        """The slot whose memory ``frames`` (a slot's ``frames`` view) is."""
        for slot in self.slots:
            if np.shares_memory(frames, slot.block):
                return slot
        raise ValueError("array is not a slot of this ring")

    def retain(self, slot: Slot, n: int = 1) -> None:
        """``n`` more readers hold ``slot``."""
        with self._cond:
            if slot.refs <= 0:
                raise RuntimeError(f"slot {slot.index} is not held")
            slot.refs += n

    def release(self, slot: Slot) -> None:
        """One holder is done with ``slot``; the last one returns it to the free list."""
        with self._cond:
            if slot.refs <= 0:
                raise RuntimeError(f"slot {slot.index} released more often than held")
            slot.refs -= 1
            if slot.refs == 0:
                self._free.append(slot.index)
                self._cond.notify()

    def close(self) -> None:
        """Wake and refuse producers waiting for a slot; free the shared block."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        if self._shm is not None:
            shm, self._shm = self._shm, None
            empty = np.zeros((0, *self.buffer.shape[1:]), self.buffer.dtype)
            self.buffer = empty
            for slot in self.slots:
                slot.block = empty
            self._unlink()
            try:
                shm.close()
            except BufferError:  # someone still holds a view: unmapped when they let go
                _LINGERING.append(shm)
