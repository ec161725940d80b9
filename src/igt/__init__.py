"""igt: invariant graph rationalization with graph transformers."""

__version__ = "0.1.0"
