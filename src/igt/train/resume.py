"""Resumable runs: the state an interrupted ``igt train`` leaves, and how training continues from it.

While ``igt train --out RUN`` trains, its rank 0 rewrites ``.RUN.resume/resume.pt`` beside ``RUN``
after every epoch (atomically): weights, every player's optimizer, every worker's random
generators (torch, numpy, Python, the data order's), the best epoch so far with its weights and
metrics, and the history. The run folder itself is still built in a hidden partial folder and
appears only when finished, so a failed run leaves no half folder at ``RUN``; the resume state
is removed when the run has finished. ``igt train --resume RUN`` continues from the last saved
epoch to the same weights and numbers as an uninterrupted run (docs/distributed.md).

Importing this module is light (paths only); torch is imported by the functions that read or write.
"""

from __future__ import annotations

import os
import pickle
import random
import zipfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from igt.errors import IgtError

if TYPE_CHECKING:  # pragma: no cover
    import torch

STATE_FORMAT = "igt-resume"
STATE_VERSION = 1
STATE_FILE = "resume.pt"


def resume_dir(out: Path) -> Path:
    """Where the resume state of a run whose folder is ``out`` lives: a hidden sibling, so that
    ``out`` appears only when the run has finished."""
    out = Path(os.path.abspath(out))
    return out.parent / f".{out.name}.resume"


def has_resume_state(out: Path) -> bool:
    return (resume_dir(out) / STATE_FILE).is_file()


def left_resume_state(out: Path) -> IgtError:
    """The error of a new run aimed at a folder whose interrupted run can still be resumed."""
    return IgtError(f"{out}: an interrupted run of this folder left its resume state; continue it with "
                    f"`igt train --resume {out}`, or pass --overwrite to start over")


def read_resume_state(out: Path) -> dict[str, Any]:
    """The saved state of the interrupted run ``out``; every failure is a one-line :class:`IgtError`."""
    import torch

    path = resume_dir(out) / STATE_FILE
    if not path.is_file():
        raise IgtError(f"{out}: no resume state to continue ({path} not found: the run finished, or never "
                       "completed an epoch)")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except (RuntimeError, EOFError, pickle.UnpicklingError, zipfile.BadZipFile, ValueError, OSError) as exc:
        reason = str(exc).splitlines()[0] if str(exc) else exc.__class__.__name__
        raise IgtError(f"{path}: not a readable resume state ({reason[:120]})") from None
    if not isinstance(state, dict) or state.get("format") != STATE_FORMAT or state.get("version") != STATE_VERSION:
        raise IgtError(f"{path}: not an igt resume state of version {STATE_VERSION}")
    return state


def write_resume_state(out: Path, state: dict[str, Any]) -> None:
    from igt.fileio import atomic_torch_save

    folder = resume_dir(out)
    folder.mkdir(exist_ok=True)
    atomic_torch_save({"format": STATE_FORMAT, "version": STATE_VERSION, **state}, folder / STATE_FILE)


def remove_resume_state(out: Path) -> None:
    import shutil

    shutil.rmtree(resume_dir(out), ignore_errors=True)


def to_cpu(value: Any) -> Any:
    """Tensors of nested dicts/lists/tuples on the CPU (a state that loads on any machine); numpy
    scalars as Python numbers (``weights_only`` loading takes no numpy objects)."""
    import numpy as np
    import torch

    if isinstance(value, torch.Tensor):
        return value.detach().cpu()
    if isinstance(value, dict):
        return {key: to_cpu(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(to_cpu(item) for item in value)
    if isinstance(value, np.generic):
        return value.item()
    return value


def capture_rng(generator: "torch.Generator | None", device: "torch.device") -> dict[str, Any]:
    """This process's random generators: torch (and CUDA's on ``device``), numpy, Python, and the
    data order's ``generator``; as tensors and numbers that ``weights_only`` loading accepts."""
    import numpy as np
    import torch

    kind, keys, pos, has_gauss, gauss = np.random.get_state()
    version, words, python_gauss = random.getstate()
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state(device) if device.type == "cuda" else None,
        "numpy": {"kind": kind, "keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos),
                  "has_gauss": int(has_gauss), "gauss": float(gauss)},
        "python": {"version": version, "words": torch.tensor(words, dtype=torch.int64), "gauss": python_gauss},
        "loader": generator.get_state() if generator is not None else None,
    }


def restore_rng(state: dict[str, Any], generator: "torch.Generator | None", device: "torch.device") -> None:
    """Undo :func:`capture_rng`: every generator continues where it was saved."""
    import numpy as np
    import torch

    torch.set_rng_state(state["torch"])
    if state["cuda"] is not None and device.type == "cuda":
        torch.cuda.set_rng_state(state["cuda"], device)
    numpy = state["numpy"]
    np.random.set_state((numpy["kind"], numpy["keys"].numpy().astype(np.uint32), numpy["pos"], numpy["has_gauss"],
                         numpy["gauss"]))
    python = state["python"]
    random.setstate((python["version"], tuple(int(w) for w in python["words"].tolist()), python["gauss"]))
    if generator is not None and state["loader"] is not None:
        generator.set_state(state["loader"])


__all__ = ["STATE_FILE", "capture_rng", "has_resume_state", "read_resume_state", "remove_resume_state",
           "restore_rng", "resume_dir", "to_cpu", "write_resume_state"]
