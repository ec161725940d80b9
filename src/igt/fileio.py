"""Atomic file writes (readers see the old file or the new one, never half of one) and safe file names."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import IO, Callable

import torch


def atomic_write(path: Path, write: Callable[[IO], None], binary: bool = False) -> None:
    """Write through ``write(handle)`` into a temporary file beside ``path``, then rename it.

    The file gets the permissions a plain ``open()`` would give (``mkstemp`` alone makes 0600).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb" if binary else "w", **({} if binary else {"encoding": "utf-8"})) as handle:
            write(handle)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write(path, lambda handle: handle.write(text))


def atomic_torch_save(obj: object, path: Path) -> None:
    atomic_write(path, lambda handle: torch.save(obj, handle), binary=True)


def safe_name(text: str) -> str:
    """A file-system-safe folder name: ``igt-n[adversarial=false]`` -> ``igt-n_adversarial=false_``."""
    return "".join(c if c.isalnum() or c in "-_.=" else "_" for c in text)
