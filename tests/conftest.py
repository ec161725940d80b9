"""Session-wide test settings: never touch the user's cache; one torch thread (tiny models run
fastest single-threaded, and results do not depend on the machine's core count); featurisation
in this process (the tests that check worker processes ask for them)."""

import os

import pytest
import torch

try:
    from hypothesis import settings
except ImportError:  # hypothesis is a test extra; the tests that use it import it themselves
    settings = None

if settings is not None:
    # CI runs the same examples every time (a red build is reproducible, never a fluke);
    # HYPOTHESIS_PROFILE=ci does the same locally. Same example counts: no slower.
    settings.register_profile("ci", derandomize=True, database=None, print_blob=True)
    settings.register_profile("dev")
    settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE") or ("ci" if os.environ.get("CI") else "dev"))


@pytest.fixture(autouse=True, scope="session")
def isolated_cache(tmp_path_factory):
    previous = os.environ.get("IGT_CACHE_DIR")
    previous_workers = os.environ.get("IGT_FEATURIZE_WORKERS")
    os.environ["IGT_CACHE_DIR"] = str(tmp_path_factory.mktemp("igt-cache"))
    os.environ["IGT_FEATURIZE_WORKERS"] = "1"
    torch.set_num_threads(1)
    yield
    if previous_workers is None:
        os.environ.pop("IGT_FEATURIZE_WORKERS", None)
    else:
        os.environ["IGT_FEATURIZE_WORKERS"] = previous_workers
    if previous is None:
        os.environ.pop("IGT_CACHE_DIR", None)
    else:
        os.environ["IGT_CACHE_DIR"] = previous
