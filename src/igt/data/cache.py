"""On-disk cache of processed datasets and structural encodings.

Everything lives under ``$IGT_CACHE_DIR`` (default ``~/.cache/igt``):

* ``datasets/<name>-<hash>.pt``: a whole :class:`GraphDataset` (one ``torch.save``), plus a
  ``.json`` sidecar with the warnings emitted while building it, so a cached load reports the
  same skipped molecules as the first load did.
* ``encodings/<name>-<hash>.pt``: the ``node_data`` tensors added by structural encodings.
* ``splits/<name>-<hash>.pt``: scaffold splits (scaffolds are slow to compute).
* ``ogb/``: OGB dataset folders downloaded for ``ogbg-mol*`` names.

The hash is over a JSON dump of a *key* dict that callers fill with everything the result depends
on (dataset identity, file size and mtime, options) plus :data:`FEATURIZATION_VERSION`, so
changing any of them builds a new entry instead of returning stale data. Writes are atomic
(temporary file + rename). A corrupt or truncated file is logged and rebuilt, never fatal.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
from pathlib import Path
from typing import Any, Callable

import torch
from torch import Tensor

from igt.data.dataset import GraphDataset
from igt.data.featurize import FEATURIZATION_VERSION
from igt.fileio import atomic_torch_save, atomic_write_text

logger = logging.getLogger("igt.data")

#: A build function returns the dataset and the warnings it emitted (replayed on cache hits).
Builder = Callable[[], tuple[GraphDataset, list[str]]]


def cache_dir() -> Path:
    """The cache root: ``$IGT_CACHE_DIR`` if set, else ``~/.cache/igt``."""
    root = os.environ.get("IGT_CACHE_DIR")
    return Path(root).expanduser() if root else Path.home() / ".cache" / "igt"


def file_identity(path: Path) -> dict[str, Any]:
    """Absolute path, size and modification time: changes whenever the file is edited."""
    path = Path(path).resolve()
    stat = path.stat()
    return {"path": str(path), "size": stat.st_size, "mtime_ns": stat.st_mtime_ns}


def cache_path(kind: str, key: dict[str, Any]) -> Path:
    """Where the entry for ``key`` lives (``kind`` is ``datasets`` or ``encodings``)."""
    full_key = {**key, "featurization": FEATURIZATION_VERSION}
    digest = hashlib.sha256(json.dumps(full_key, sort_keys=True, default=str).encode()).hexdigest()[:20]
    label = re.sub(r"[^A-Za-z0-9_.-]+", "_", str(key.get("name", "data")))[-60:]
    return cache_dir() / kind / f"{label}-{digest}.pt"


def cached_dataset(key: dict[str, Any], build: Builder) -> GraphDataset:
    """Load the dataset cached under ``key``, or build, save and return it.

    Args:
        key: Everything the dataset depends on (JSON-serialisable); include ``name`` for a
            readable file name.
        build: Called on a miss; returns the dataset and the warnings it logged.

    Returns:
        The dataset. Warnings recorded at build time are logged again on a cache hit.
    """
    path = cache_path("datasets", key)
    sidecar = path.with_suffix(".json")
    if path.is_file():
        try:
            dataset = GraphDataset.load(path)
        except Exception as exc:  # truncated/corrupt/incompatible file: rebuild it
            logger.warning("cache file %s is unreadable (%s); rebuilding it", path, type(exc).__name__)
        else:
            for message in _read_warnings(sidecar):
                logger.warning(message)
            return dataset
    dataset, warnings = build()
    dataset.save(path)
    _write_json(sidecar, {"key": key, "featurization": FEATURIZATION_VERSION, "warnings": warnings})
    return dataset


def cached_tensors(
    key: dict[str, Any],
    build: Callable[[], dict[str, Tensor]],
    kind: str = "encodings",
    fits: Callable[[dict[str, Tensor]], bool] | None = None,
) -> dict[str, Tensor]:
    """Load a dict of tensors cached under ``key``, or build and save it.

    Args:
        key: Everything the tensors depend on (JSON-serialisable).
        build: Called on a miss.
        kind: Sub-folder of the cache (``encodings``, ``splits``).
        fits: Checks that cached tensors fit what they will be attached to (e.g. one row per
            node); a cache file that does not fit, say one written by an older igt whose key
            missed a detail, is rebuilt instead of breaking a run.
    """
    path = cache_path(kind, key)
    if path.is_file():
        try:
            tensors = torch.load(path, weights_only=True)
            if isinstance(tensors, dict) and all(isinstance(v, Tensor) for v in tensors.values()):
                if fits is None or fits(tensors):
                    return tensors
                logger.warning("cache file %s does not fit this dataset; rebuilding it", path)
            else:
                logger.warning("cache file %s has unexpected contents; rebuilding it", path)
        except Exception as exc:
            logger.warning("cache file %s is unreadable (%s); rebuilding it", path, type(exc).__name__)
    tensors = build()
    atomic_torch_save(tensors, path)
    return tensors


def _read_warnings(sidecar: Path) -> list[str]:
    try:
        return [str(m) for m in json.loads(sidecar.read_text()).get("warnings", [])]
    except (OSError, ValueError, AttributeError):
        return []


def _write_json(path: Path, payload: dict[str, Any]) -> None:
    atomic_write_text(path, json.dumps(payload, default=str))
