"""Process-level numerics that decide whether a seeded run regenerates bit for bit.

A training run on the CPU is a chaotic function of its float roundings: one ulp of difference in
a matrix product moves the selected epoch and the test metric (FreeSolv ``gin`` seed 0, one
thread, one machine: test RMSE 2.57, 2.66, 3.33 or 3.37 depending only on which MKL / ATen
kernels ran). The kernels are chosen per CPU at run time (AVX-512 on one machine, AVX2 on
another), and the thread count changes the order of reductions. So igt pins both:

* ``ATEN_CPU_CAPABILITY=avx2``: PyTorch's own vectorised kernels use AVX2 on every x86 CPU
  that has it, not AVX-512 where the CPU happens to offer it.
* ``MKL_CBWR=AVX2``: MKL's conditional numerical reproducibility, the same code path on every
  Intel CPU that supports AVX2. Not across vendors: on an AMD EPYC MKL runs this as ``CNR:AUTO``
  (``MKL_VERBOSE=1``) and rounds unlike a Xeon, so rows regenerate on the CPU model that trained
  them (docs/reproducibility.md).
* ``ONEDNN_MAX_CPU_ISA=AVX2``: the same for oneDNN.

They are environment variables read once per process when the libraries initialise, so
:func:`pin_cpu_kernels` runs when ``igt`` is imported, before igt imports torch. A value the user
set is kept; ``IGT_PIN_KERNELS=0`` turns pinning off. Threads are a run option
(``train.threads``) recorded in each run's ``config.yaml``. Every run records the resulting
:func:`kernel_fingerprint`; ``igt reproduce --verify`` compares against it.
"""

from __future__ import annotations

import logging
import os
import platform
import re
from typing import Any

PINNED_KERNELS = {"ATEN_CPU_CAPABILITY": "avx2", "MKL_CBWR": "AVX2", "ONEDNN_MAX_CPU_ISA": "AVX2"}


def _cpu_has_avx2() -> bool:
    if platform.machine().lower() not in {"x86_64", "amd64"}:
        return False
    try:
        with open("/proc/cpuinfo") as handle:
            for line in handle:
                if line.startswith("flags"):
                    return "avx2" in line.split()
    except OSError:
        pass
    return False


def pin_cpu_kernels() -> dict[str, str]:
    """Set the kernel-pinning environment variables that the user has not set; returns those
    in force. Does nothing off x86-64 CPUs with AVX2, or when ``IGT_PIN_KERNELS=0``."""
    if os.environ.get("IGT_PIN_KERNELS", "1").strip() in {"0", "false", "no"} or not _cpu_has_avx2():
        return {}
    for name, value in PINNED_KERNELS.items():
        os.environ.setdefault(name, value)
    return {name: os.environ[name] for name in PINNED_KERNELS}


#: Packages whose version can change a run's numbers: its data (RDKit parses and splits the
#: molecules), its layers (PyG) or its arithmetic.
NUMERIC_PACKAGES = ("torch", "torch_geometric", "rdkit", "numpy", "scipy", "scikit-learn")


def kernel_fingerprint() -> dict[str, Any]:
    """What decides a CPU run's roundings besides its config: torch's version, the vectorised
    kernel level in use, MKL's reproducibility branch, the number of threads, the CPU model (MKL
    rounds differently on another vendor's CPU whatever ``MKL_CBWR`` says: docs/reproducibility.md)
    and the versions of the packages that make the data and the layers."""
    from importlib import metadata

    import torch

    def version(name: str) -> str:
        try:
            return metadata.version(name)
        except metadata.PackageNotFoundError:
            return ""

    return {
        "torch": str(torch.__version__),  # a str subclass that weights_only loading refuses
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "mkl_cbwr": os.environ.get("MKL_CBWR", ""),
        "threads": torch.get_num_threads(),
        "cpu": cpu_model(),
        "packages": {name: version(name) for name in NUMERIC_PACKAGES},
    }


def cpu_model() -> str:
    """The CPU's model name (``/proc/cpuinfo``), else what ``platform`` knows."""
    try:
        with open("/proc/cpuinfo") as handle:
            for line in handle:
                if line.startswith("model name"):
                    return " ".join(line.split(":", 1)[1].split())
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown model"


_rdkit_routed = False


class _OneLineWarning(logging.Handler):
    """``warning: rdkit: <message on one line>`` on the current ``sys.stderr`` (looked up at each
    message, so redirected or captured stderr gets it)."""

    def emit(self, record: logging.LogRecord) -> None:
        import sys

        text = " ".join(record.getMessage().split())
        text = re.sub(r"^\[\d\d:\d\d:\d\d\]\s*", "", text)  # RDKit's own time stamp
        if text:
            sys.stderr.write(f"warning: rdkit: {text}\n")


def route_rdkit_logs() -> None:
    """RDKit writes its messages (``SMILES Parse Error...``, over several lines, with timestamps)
    straight to stderr from C++, into piped logs and ``igt bench`` output. Send them through
    Python's logging instead: one ``warning: rdkit: ...`` line each on stderr, errors and warnings
    only. Idempotent; commands that may touch RDKit call it before they do. Code that silences
    RDKit around expected failures (``RDLogger.DisableLog``) still silences it."""
    global _rdkit_routed
    if _rdkit_routed:
        return
    _rdkit_routed = True
    try:
        from rdkit import rdBase
    except ImportError:  # RDKit is only needed for molecules
        return
    rdBase.LogToPythonLogger()  # to the Python logger named "rdkit"
    logger = logging.getLogger("rdkit")
    logger.setLevel(logging.WARNING)
    logger.propagate = False
    for handler in list(logger.handlers):  # RDKit's own StreamHandler, bound to the stderr of its import
        logger.removeHandler(handler)
    logger.addHandler(_OneLineWarning())


__all__ = ["NUMERIC_PACKAGES", "PINNED_KERNELS", "cpu_model", "kernel_fingerprint", "pin_cpu_kernels", "route_rdkit_logs"]
