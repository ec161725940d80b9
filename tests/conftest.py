"""Session-wide test settings: never touch the user's cache; one torch thread (tiny models run
fastest single-threaded, and results do not depend on the machine's core count)."""

import os

import pytest
import torch


@pytest.fixture(autouse=True, scope="session")
def isolated_cache(tmp_path_factory):
    previous = os.environ.get("IGT_CACHE_DIR")
    os.environ["IGT_CACHE_DIR"] = str(tmp_path_factory.mktemp("igt-cache"))
    torch.set_num_threads(1)
    yield
    if previous is None:
        os.environ.pop("IGT_CACHE_DIR", None)
    else:
        os.environ["IGT_CACHE_DIR"] = previous
