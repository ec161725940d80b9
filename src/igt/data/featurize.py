"""SMILES -> graph with exactly OGB's atom (9) and bond (3) categorical feature vocabulary.

The values are identical to ``ogb.utils.smiles2graph`` (tests compare them on every built-in
molecule), at about twice its speed on one thread, and large inputs are split over processes.
How the speed is obtained is in :mod:`igt.molgraph`, the torch-free half that worker processes
import; timings are in docs/speed.md.

Vocabulary (index of each category; the last index of a column is OGB's ``misc`` bucket):

* atoms: atomic number 1..118 | chirality (unspecified, CW, CCW, other) | total degree 0..10 |
  formal charge -5..5 | total H count 0..8 | radical electrons 0..4 |
  hybridisation (SP, SP2, SP3, SP3D, SP3D2) | is aromatic | is in ring.
* bonds: type (single, double, triple, aromatic) | stereo (none, Z, E, cis, trans, any) |
  is conjugated.

Molecules RDKit cannot parse or sanitise (e.g. the 7 Al/B/Ge complexes of HIV, whose valences
RDKit rejects) are *not* featurised from an unsanitised molecule: they are skipped and
reported by :func:`featurize_smiles` so the caller can tell the user (never silently).
"""

from __future__ import annotations

import logging
import math
import multiprocessing
import os
import sys
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from itertools import repeat
from typing import Sequence

import torch
from torch import Tensor

from igt.errors import IgtError
from igt.molgraph import ATOM_VOCAB, BOND_VOCAB, ChunkGraphs, featurize_chunk, size_problem

__all__ = ["ATOM_VOCAB", "BOND_VOCAB", "FEATURIZATION_VERSION", "featurize_smiles", "smiles_to_graph",
           "featurize_workers", "usable_cpus", "size_problem", "shorten"]

logger = logging.getLogger("igt.data")

#: Bump whenever the produced features change: it is part of every dataset cache key.
FEATURIZATION_VERSION: str = "ogb-1"

#: Environment variable overriding the default number of featurisation processes.
WORKERS_ENV = "IGT_FEATURIZE_WORKERS"
# Below this many SMILES one process is faster than starting others (and tests stay serial).
_PARALLEL_MIN_SMILES = 8000
# Work unit of a process (and of the serial loop, which bounds its Python lists' size).
_CHUNK_SMILES = 2000

def smiles_to_graph(smiles: str) -> dict[str, Tensor] | None:
    """Featurise one molecule with OGB's vocabulary.

    Args:
        smiles: A SMILES string.

    Returns:
        ``{"x": long [n, 9], "edge_index": long [2, 2m], "edge_attr": long [2m, 3]}`` with every
        bond in both directions, or ``None`` when RDKit cannot parse or sanitise the SMILES
        (or it has no atoms).
    """
    graphs = _to_graphs(featurize_chunk([smiles]))
    return graphs[0] if graphs else None


def featurize_smiles(
    smiles: Sequence[str], max_atoms: int | None = None, max_smiles_length: int | None = None,
    workers: int | None = None,
) -> tuple[list[dict[str, Tensor]], list[int], list[tuple[int, str, str]]]:
    """Featurise many molecules, skipping (and reporting) the ones RDKit rejects or that are too big.

    Args:
        smiles: SMILES strings, one per dataset row.
        max_atoms: Skip molecules with more heavy atoms (``data.max_atoms``; ``None``: no limit).
        max_smiles_length: Skip SMILES longer than this many characters *before* RDKit parses
            them (``data.max_smiles_length``), so a multi-megabyte string costs nothing.
        workers: Processes to featurise in; ``None``: :func:`featurize_workers`. The output does
            not depend on it (same graphs, same order, same failures).

    Returns:
        ``(graphs, kept, failures)``: the graphs of the valid molecules, their row indices in
        ``smiles`` (so labels can be aligned), and ``(row, smiles, reason)`` for each skipped row.
        A graph's tensors are views into arrays shared by its chunk of molecules.
    """
    smiles = list(smiles)
    count = featurize_workers(len(smiles)) if workers is None else max(1, int(workers))
    size = _CHUNK_SMILES if count == 1 else max(1, min(_CHUNK_SMILES, math.ceil(len(smiles) / count)))
    starts = list(range(0, len(smiles), size))
    chunks = [smiles[start:start + size] for start in starts]
    parts = None
    if count > 1 and len(chunks) > 1:
        parts = _in_processes(chunks, starts, max_atoms, max_smiles_length, min(count, len(chunks)))
    if parts is None:
        parts = [featurize_chunk(chunk, start, max_atoms, max_smiles_length) for chunk, start in zip(chunks, starts)]
    graphs: list[dict[str, Tensor]] = []
    kept: list[int] = []
    failures: list[tuple[int, str, str]] = []
    for part in parts:
        graphs.extend(_to_graphs(part))
        kept.extend(part.kept)
        failures.extend(part.failures)
    return graphs, kept, failures


def featurize_workers(count: int) -> int:
    """Default number of featurisation processes for ``count`` SMILES: ``$IGT_FEATURIZE_WORKERS``
    when set, else 1 below 8,000 SMILES (starting processes would cost more than it saves),
    else one per CPU this process may run on."""
    setting = os.environ.get(WORKERS_ENV, "").strip()
    if setting:
        try:
            value = int(setting)
        except ValueError:
            raise IgtError(f"{WORKERS_ENV}={setting!r}: expected a whole number of processes") from None
        return max(1, value)
    if count < _PARALLEL_MIN_SMILES:
        return 1
    return max(1, min(usable_cpus(), math.ceil(count / _CHUNK_SMILES)))


def usable_cpus() -> int:
    """CPUs this process may run on (its affinity mask where the OS has one, not every core of
    the machine: a container or ``taskset`` may allow fewer)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def _in_processes(
    chunks: list[list[str]], starts: list[int], max_atoms: int | None, max_smiles_length: int | None, workers: int,
) -> list[ChunkGraphs] | None:
    """The chunks featurised by ``workers`` processes, in order; ``None`` (after a warning) when
    processes cannot be used here, so the caller featurises serially instead."""
    # Fork where it is the platform's norm (Linux; PyTorch's DataLoader does the same): the
    # workers run RDKit and numpy only. Elsewhere spawn, which imports only igt.molgraph.
    method = "fork" if sys.platform.startswith("linux") else "spawn"
    try:
        with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context(method)) as pool:
            return list(pool.map(featurize_chunk, chunks, starts, repeat(max_atoms), repeat(max_smiles_length)))
    except (BrokenProcessPool, OSError, RuntimeError) as exc:
        logger.warning("featurising in one process: %d worker processes failed (%s: %s)", workers,
                       type(exc).__name__, str(exc).splitlines()[0] if str(exc) else "")
        return None


def _to_graphs(part: ChunkGraphs) -> list[dict[str, Tensor]]:
    """One ``{"x", "edge_index", "edge_attr"}`` per molecule: views of the chunk's arrays."""
    atoms, edges = part.atoms.tolist(), part.edges.tolist()
    xs = torch.from_numpy(part.x).split(atoms)
    edge_indices = torch.from_numpy(part.edge_index).split(edges, dim=1)
    edge_attrs = torch.from_numpy(part.edge_attr).split(edges)
    return [{"x": x, "edge_index": e, "edge_attr": a} for x, e, a in zip(xs, edge_indices, edge_attrs)]


def shorten(text: str, width: int = 60) -> str:
    """``text`` cut to ``width`` characters for messages (a 5 MB SMILES must not flood the log)."""
    return text if len(text) <= width else f"{text[:width]}...({len(text)} characters)"
