"""Atomic file writes (readers see the old file or the new one, never half of one), safe file
names, and writable-output checks that fail with one line naming the path."""

from __future__ import annotations

import errno
import os
import socket
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any, Callable, Iterator

from igt.errors import IgtError


@contextmanager
def atomic_open(path: Path, binary: bool = False, newline: str | None = None) -> Iterator[IO]:
    """``with atomic_open(path) as handle:`` writes a temporary file beside ``path`` and renames it
    over ``path`` when the block ends without an exception (on one, the temporary file goes away).

    A text handle is UTF-8 and takes ``newline`` as :func:`open` does (``""`` for :mod:`csv`
    writers, so their ``\r\n`` rows are written as given). The file gets the permissions a plain
    ``open()`` would give (``mkstemp`` alone makes 0600).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb" if binary else "w", **({} if binary else {"encoding": "utf-8", "newline": newline})) as handle:
            yield handle
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write(path: Path, write: Callable[[IO], None], binary: bool = False, newline: str | None = None) -> None:
    """Write through ``write(handle)`` into a temporary file beside ``path``, then rename it
    (:func:`atomic_open`)."""
    with atomic_open(path, binary, newline) as handle:
        write(handle)


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write(path, lambda handle: handle.write(text))


def atomic_write_bytes(path: Path, data: bytes) -> None:
    atomic_write(path, lambda handle: handle.write(data), binary=True)


def save_figure(figure: Any, path: Path, dpi: int = 100) -> Path:
    """Save a matplotlib figure atomically, in the format its suffix names (``.png``, ``.svg``)."""
    path = Path(path)
    atomic_write(path, lambda handle: figure.savefig(handle, format=path.suffix.lstrip(".") or "png", dpi=dpi),
                 binary=True)
    return path


def atomic_torch_save(obj: object, path: Path) -> None:
    import torch  # here, not at the top: `igt --help` must not wait for torch

    atomic_write(path, lambda handle: torch.save(obj, handle), binary=True)


def safe_name(text: str) -> str:
    """A file-system-safe folder name: ``igt-n[adversarial=false]`` -> ``igt-n_adversarial=false_``."""
    return "".join(c if c.isalnum() or c in "-_.=" else "_" for c in text)


_NAME_SUFFIXES = (".csv.gz", ".tsv.gz", ".csv", ".tsv")  # longest first


def dataset_name(path_or_name: str | Path) -> str:
    """A dataset's short name: a built-in or ``spmotif-0.9`` / ``ogbg-molhiv`` name unchanged, a
    ``.csv``/``.tsv`` file (gzipped or not) its name without those suffixes (``data/mols.csv.gz`` ->
    ``mols``), an OGB folder its folder name. The one rule for run folders, result folders and caches."""
    text = str(path_or_name)
    name = Path(text).name or text
    lowered = name.lower()
    for suffix in _NAME_SUFFIXES:
        if lowered.endswith(suffix):
            return name[: -len(suffix)]
    return name


def dataset_folder(dataset: str | Path) -> str:
    """Folder of a dataset's runs in a results folder: the name itself (``spmotif-0.9``), or a data
    file's stem (:func:`dataset_name`), made file-system safe."""
    return safe_name(dataset_name(dataset))


def process_name() -> str:
    """``host:pid`` of this process: who holds a lock or ran a trial, also across machines (a PID
    alone names a process only on its own host)."""
    return f"{socket.gethostname()}:{os.getpid()}"


def pid_alive(pid: int) -> bool:
    """Whether process ``pid`` exists (a folder or lock it owns is not stale)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def make_folder(path: Path, what: str = "output") -> list[Path]:
    """``mkdir -p path``; returns the folders it created (outermost first), so a failed command
    can remove them again. An unwritable place is an :class:`IgtError` naming ``path``."""
    path = Path(path)
    missing = []
    probe = path
    while not probe.exists() and probe != probe.parent:
        missing.append(probe)
        probe = probe.parent
    missing.reverse()
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        remove_empty_folders(missing)
        raise IgtError(f"{path}: cannot create the {what} folder ({_reason(exc)})") from None
    return missing


def remove_empty_folders(created: list[Path]) -> None:
    """Undo :func:`make_folder` as far as the folders are still empty."""
    for folder in reversed(created):
        try:
            folder.rmdir()
        except OSError:
            return


def check_writable_folder(path: Path, what: str = "output", name: Path | None = None) -> None:
    """Fail now, not after the slow part, when ``path`` (a folder, maybe not there yet) cannot be
    written: a parent is a regular file, the file system is read-only or ``/proc``, no permission.
    The nearest existing folder is probed by creating (and removing) an empty folder in it, which
    answers for root and read-only mounts too, unlike ``os.access``. Messages name ``name``
    (default ``path``): a file to be written in ``path``."""
    shown, path = name if name is not None else path, Path(os.path.abspath(path))
    existing = path
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise IgtError(f"{shown}: cannot create the {what} folder ({existing} is not a folder)")
    try:
        os.rmdir(tempfile.mkdtemp(prefix=".igt-probe-", dir=existing))
    except OSError as exc:
        raise IgtError(f"{shown}: cannot write the {what} there ({_reason(exc)})") from None


def check_output_folder(out: Path, overwrite: bool, what: str = "output") -> None:
    """Refuse a file, a folder that holds files unless ``overwrite``, and an unwritable place."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise IgtError(f"{out}: exists and is not a folder")
    if out.is_dir() and any(out.iterdir()) and not overwrite:
        raise IgtError(f"{out}: already holds files; choose another --out or pass --overwrite")
    check_writable_folder(out, what)


def _reason(exc: OSError) -> str:
    if exc.errno == errno.EROFS:
        return "read-only file system"
    if exc.errno == errno.ENOENT:  # /proc and the like: a folder that takes no new entries
        return "not a writable folder"
    return exc.strerror or exc.__class__.__name__
