"""One guarded way to claim an output store.

Every command that writes a store (``run``, ``acquire``, ``reconstruct``) claims its output
through :func:`claim_output`, which

- never replaces anything that is not an srlive store (``--overwrite`` included): a file, a
  directory of the user's, a Zarr store of another program are refused with one line;
- never writes into (or over) one of the command's inputs (``reconstruct a.zarr --out a.zarr``);
- holds an exclusive lock on the store while it is written (an ``flock`` on a lock file inside
  it, released by the kernel if the process dies), so a second writer is refused, whether it
  starts plainly or with ``--overwrite``;
- creates the directory with one atomic ``mkdir``, so two writers starting together cannot
  both win.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import socket
from pathlib import Path
from types import TracebackType
from typing import Self

__all__ = [
    "LOCK_NAME",
    "OutputLock",
    "StoreBusyError",
    "StoreGuardError",
    "check_output",
    "claim_output",
    "holds_lock",
    "is_srlive_store",
    "only_lock_file",
]

LOCK_NAME = ".srlive-writer.lock"

_HELD: dict[Path, OutputLock] = {}  # stores this process is writing, by resolved path


class StoreGuardError(ValueError):
    """The output cannot be claimed (it is not a store, or it is an input)."""


class StoreBusyError(StoreGuardError):
    """Another writer holds the store."""


def srlive_attrs(path: str | os.PathLike[str]) -> dict | None:
    """The root ``srlive`` attributes of the store at ``path`` (None: not an srlive store)."""
    meta = Path(path) / "zarr.json"
    try:
        attrs = json.loads(meta.read_text()).get("attributes", {})
    except (OSError, ValueError, AttributeError):
        return None
    found = attrs.get("srlive") if isinstance(attrs, dict) else None
    return found if isinstance(found, dict) else None


def is_srlive_store(path: str | os.PathLike[str]) -> bool:
    """True if ``path`` is a directory whose root ``zarr.json`` carries srlive attributes."""
    return srlive_attrs(path) is not None


def only_lock_file(path: Path) -> bool:
    """An empty directory, or one left with nothing but a lock file (a crashed claim)."""
    return all(entry.name == LOCK_NAME for entry in path.iterdir())


class OutputLock:
    """An exclusive claim on one store directory for this process (see :func:`claim_output`)."""

    def __init__(self, path: Path, fd: int) -> None:
        self.path = path
        self._fd: int | None = fd

    @classmethod
    def acquire(cls, path: Path) -> OutputLock:
        """Lock ``path`` (an existing directory); StoreBusyError if another writer has it."""
        lock_file = path / LOCK_NAME
        fd = os.open(lock_file, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _read_holder(fd)
            os.close(fd)
            raise StoreBusyError(
                f"{path} is being written by another srlive process{holder}; "
                "wait for it to finish or choose another --out"
            ) from None
        except OSError:
            os.close(fd)
            raise
        os.ftruncate(fd, 0)
        os.write(fd, f"pid {os.getpid()} on {socket.gethostname()}\n".encode())
        lock = cls(path, fd)
        _HELD[path.resolve()] = lock
        return lock

    @property
    def held(self) -> bool:
        return self._fd is not None

    def release(self) -> None:
        """Remove the lock file and unlock (idempotent)."""
        if self._fd is None:
            return
        fd, self._fd = self._fd, None
        _HELD.pop(self.path.resolve(), None)
        try:
            (self.path / LOCK_NAME).unlink(missing_ok=True)
        except OSError:  # read-only now, or gone: the kernel still drops the lock below
            pass
        os.close(fd)

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.release()


def _read_holder(fd: int) -> str:
    try:
        text = os.pread(fd, 200, 0).decode(errors="replace").strip()
    except OSError:
        return ""
    return f" ({text})" if text else ""


def holds_lock(path: str | os.PathLike[str]) -> bool:
    """True if this process holds the writer's lock on ``path``."""
    lock = _HELD.get(Path(path).resolve())
    return lock is not None and lock.held


def _overlaps(a: Path, b: Path) -> bool:
    return a == b or a in b.parents or b in a.parents


def _check_inputs(out: Path, inputs: tuple | list) -> None:
    resolved = out.resolve()
    for source in inputs:
        if _overlaps(resolved, Path(source).resolve()):
            raise StoreGuardError(
                f"output {out} overlaps the input {source}: writing it would destroy the "
                "input; choose another --out"
            )


def _check_replaceable(out: Path) -> None:
    if out.is_symlink() or not out.is_dir():
        raise StoreGuardError(
            f"{out} is not an srlive store (a file or link); --overwrite replaces only "
            "srlive stores, refusing to touch it"
        )
    if not (is_srlive_store(out) or only_lock_file(out)):
        raise StoreGuardError(
            f"{out} is not an srlive store; --overwrite replaces only srlive stores, "
            "refusing to touch it"
        )


def _existing_replaceable(out: Path, overwrite: bool, inputs: tuple | list) -> bool:
    """True if ``out`` exists and may be replaced; raise if it may not be written at all."""
    _check_inputs(out, inputs)
    if not (out.is_symlink() or out.exists()):
        return False
    if not overwrite:
        raise FileExistsError(f"{out} exists (use --overwrite to replace it)")
    _check_replaceable(out)
    return True


def check_output(
    path: str | os.PathLike[str],
    *,
    overwrite: bool = False,
    inputs: tuple[str | os.PathLike[str], ...] | list[str | os.PathLike[str]] = (),
) -> None:
    """Everything :func:`claim_output` checks, without claiming (before devices move)."""
    out = Path(path)
    if _existing_replaceable(out, overwrite, inputs):
        if os.access(out / LOCK_NAME, os.F_OK):
            OutputLock.acquire(out).release()  # StoreBusyError while another writer has it
        if not os.access(out, os.W_OK):
            raise StoreGuardError(f"{out} is not writable")
        return
    parent = next((d for d in out.absolute().parents if d.exists()), None)
    if parent is None or not parent.is_dir():
        raise StoreGuardError(f"cannot create {out}: {parent} is not a directory")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise StoreGuardError(f"cannot create {out}: {parent} is not writable")


def claim_output(
    path: str | os.PathLike[str],
    *,
    overwrite: bool = False,
    inputs: tuple[str | os.PathLike[str], ...] | list[str | os.PathLike[str]] = (),
) -> OutputLock:
    """Claim ``path`` for writing a new store: an empty, locked directory on return.

    ``overwrite`` replaces an existing srlive store (only that). ``inputs`` are paths the
    command reads; an output that is, contains or lies inside one of them is refused.
    """
    out = Path(path)
    if _existing_replaceable(out, overwrite, inputs):
        lock = OutputLock.acquire(out)  # refused while another process writes it
        try:
            _clear_except_lock(out)
        except BaseException:
            lock.release()
            raise
        return lock
    out.parent.mkdir(parents=True, exist_ok=True)
    try:
        out.mkdir()
    except FileExistsError:  # another writer created it between our look and our mkdir
        raise StoreBusyError(
            f"{out} was just created by another process; choose another --out"
        ) from None
    return OutputLock.acquire(out)


def _clear_except_lock(path: Path) -> None:
    for entry in path.iterdir():
        if entry.name == LOCK_NAME:
            continue
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry)
        else:
            entry.unlink()
