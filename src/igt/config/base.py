"""The building blocks every config section uses: the search-space type of ``igt tune``, the value
checks run in ``__post_init__``, and :class:`MethodConfig` with the registry of method options.

It imports nothing of igt above :mod:`igt.errors` and :mod:`igt.registry`, so the method
options (:mod:`igt.config.methods`) and the run config (:mod:`igt.config.run`) both build on it
without a cycle.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from igt.errors import IgtError
from igt.registry import Registry


# ----------------------------------------------------------------------------- search spaces
# ``igt tune`` (igt.tune) searches the options a config class lists in its ``SEARCH_SPACE``
# ClassVar, keyed by field name. A spec is plain data: ``{"low": 1e-4, "high": 1e-2, "log": True}``
# (an int range when both bounds are ints, else a float range) or ``{"choices": [32, 64, 128]}``;
# ``"models": ["igt-vn"]`` limits an option to those ``--model`` names. Ranges are sized for a few
# CPU cores and must contain the default, which a study tries first.
SearchSpace = dict[str, dict[str, Any]]


# ----------------------------------------------------------------------------- value checks
# Every config dataclass checks its own ranges in ``__post_init__`` (as PyG's explain configs do),
# so a bad value fails where the config is made: before any data loads or any folder is written.
# Messages name the key as ``--set`` writes it: ``train.epochs=0: expected at least 1``.


def reject(key: str, value: Any, expected: str) -> None:
    """Raise the one-line error of a bad config value: ``key=value: expected ...``."""
    raise IgtError(f"{key}={value!r}: expected {expected}" if isinstance(value, str) else f"{key}={value}: expected {expected}")


def check_at_least(key: str, value: Any, low: float) -> None:
    if value < low:
        reject(key, value, f"at least {low}")


def check_positive(key: str, value: float) -> None:
    if not value > 0:  # also refuses NaN
        reject(key, value, "a number above 0")


def check_non_negative(key: str, value: float) -> None:
    if not value >= 0:
        reject(key, value, "a number >= 0")


def check_fraction(key: str, value: float, zero: bool = False, one: bool = True) -> None:
    """``value`` in ``(0, 1]`` (``zero``: ``[0, ...``; not ``one``: ``..., 1)``)."""
    low_ok = value >= 0 if zero else value > 0
    high_ok = value <= 1 if one else value < 1
    if not (low_ok and high_ok):
        reject(key, value, f"a number in {'[' if zero else '('}0, 1{']' if one else ')'}")


def check_choice(key: str, value: Any, choices: tuple[str, ...]) -> None:
    if value not in choices:
        reject(key, value, f"one of {', '.join(choices)}")


@dataclass
class MethodConfig:
    """Options shared by every method; subclasses add the method's own options.

    Args:
        name: ``erm`` or a rationalization method (``igt-n``, ``igt-vn``, ...).
        pooling: Graph readout of the predictor: ``mean``, ``sum`` or ``max``.
    """

    name: str = "erm"
    pooling: str = "mean"

    # Subclasses list their own options; ERM adds none to the backbone's and training's.
    SEARCH_SPACE: ClassVar[SearchSpace] = {}

    def __post_init__(self) -> None:
        # Subclasses (igt.config.methods) check their own options and call this first.
        check_choice("method.pooling", self.pooling, ("mean", "sum", "max"))


#: Method name -> options class; the built-in ones are registered by :mod:`igt.config.methods`.
METHOD_CONFIGS: Registry[type[MethodConfig]] = Registry("method")
