"""Checkpoints written by an earlier igt keep loading and predicting the same.

``tests/fixtures/checkpoints/`` holds tiny runs (BBBP, one epoch, width 8) saved at igt 0.1.0 with
what they predicted then; a change that breaks loading them, or changes their predictions,
breaks every user's trained models. Regenerate them only with a checkpoint format bump.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from igt.predict import load_trained, predict_smiles

CHECKPOINTS = Path(__file__).resolve().parents[1] / "fixtures" / "checkpoints"


@pytest.mark.parametrize("name", ["gin", "igt-n", "rf"])
def test_a_committed_checkpoint_loads_and_predicts_what_it_did(name):
    expected = json.loads((CHECKPOINTS / f"{name}.expected.json").read_text())
    model = load_trained(CHECKPOINTS / f"{name}.pt", device="cpu")
    got = predict_smiles(model, expected["smiles"], progress=False)
    np.testing.assert_allclose(got.values, np.array(expected["values"]), rtol=0, atol=1e-5)
    for scores, reference in zip(got.node_scores, expected["node_scores"]):
        if reference is None:
            assert scores is None
        else:
            np.testing.assert_allclose(scores, reference, rtol=0, atol=1e-5)
