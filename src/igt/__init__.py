"""igt: invariant graph rationalization with graph transformers."""

from igt.runtime import pin_cpu_kernels

# Before anything imports torch: the same seed gives the same run on every x86 CPU (igt.runtime).
pin_cpu_kernels()

__version__ = "0.1.0"
