"""Fingerprint baselines (rf, svm): the tensors a checkpoint keeps predict what scikit-learn
predicts, and the models run through the same run folder, checkpoint and predict paths."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from igt.config import RandomForestConfig, RunConfig, SVMConfig
from igt.data.task import TaskSpec
from igt.errors import IgtError
from igt.methods.fingerprint import (_fit_forest, _fit_svm, _forest_leaf_values,
                                     morgan_fingerprints, tanimoto_kernel)
from igt.models import model_names
from igt.predict import load_trained, predict_smiles
from igt.train.checkpoint import read_checkpoint
from igt.run import train_run

BINARY = TaskSpec("binary")
REGRESSION = TaskSpec("regression", metric="rmse")


def bits(rows: int, width: int = 64, seed: int = 0) -> np.ndarray:
    return (np.random.default_rng(seed).random((rows, width)) < 0.2).astype(np.uint8)


@settings(max_examples=30, deadline=None)
@given(arrays(np.uint8, (5, 12), elements=st.integers(0, 1)), arrays(np.uint8, (4, 12), elements=st.integers(0, 1)))
def test_tanimoto_kernel_is_the_bit_set_ratio(a, b):
    kernel = tanimoto_kernel(a, b)
    for i in range(len(a)):
        for j in range(len(b)):
            both, either = np.sum(a[i] & b[j]), np.sum(a[i] | b[j])
            assert kernel[i, j] == pytest.approx(both / either if either else 1.0)


def test_morgan_fingerprints_match_rdkit_and_name_a_bad_smiles():
    from rdkit import Chem, DataStructs
    from rdkit.Chem import rdFingerprintGenerator

    fps = morgan_fingerprints(["CCO", "c1ccccc1O"], radius=2, bits=256)
    reference = rdFingerprintGenerator.GetMorganGenerator(radius=2, fpSize=256).GetFingerprint(Chem.MolFromSmiles("c1ccccc1O"))
    expected = np.zeros(256, dtype=np.uint8)
    DataStructs.ConvertToNumpyArray(reference, expected)
    assert fps.shape == (2, 256) and np.array_equal(fps[1], expected)
    with pytest.raises(IgtError, match="row 1.*'C1CC'"):
        morgan_fingerprints(["CC", "C1CC"])


def test_forest_tensors_predict_what_scikit_learn_predicts():
    from sklearn.ensemble import RandomForestClassifier, RandomForestRegressor

    x, x_new = bits(120), bits(40, seed=1)
    labels = (x[:, :5].sum(1) > 1).astype(np.int64)
    config = RandomForestConfig(n_estimators=7, max_features="sqrt")
    fitted = _fit_forest("t.", config, BINARY, x, labels, seed=3)
    reference = RandomForestClassifier(n_estimators=7, max_features="sqrt", random_state=3, n_jobs=1).fit(x, labels)
    ours = _forest_leaf_values(fitted, "t.", x_new).mean(1)
    np.testing.assert_allclose(ours, reference.predict_proba(x_new), rtol=0, atol=1e-12)

    values = x[:, :8].sum(1) + 0.1 * np.arange(len(x)) % 3
    fitted = _fit_forest("t.", config, REGRESSION, x, values, seed=3)
    reference = RandomForestRegressor(n_estimators=7, max_features="sqrt", random_state=3, n_jobs=1).fit(x, values)
    np.testing.assert_allclose(_forest_leaf_values(fitted, "t.", x_new).mean(1)[:, 0], reference.predict(x_new), atol=1e-12)


def test_svm_tensors_predict_what_scikit_learn_predicts():
    from sklearn.calibration import CalibratedClassifierCV
    from sklearn.svm import SVC, SVR

    from igt.methods.fingerprint import FingerprintModel

    x, x_new = bits(90), bits(30, seed=1)
    labels = (x[:, :6].sum(1) > 1).astype(np.int64)
    model = FingerprintModel(SVMConfig(c=2.0, calibration_folds=3), BINARY)
    model.fitted = _fit_svm("task0.", model.config, BINARY, x, labels, seed=0)
    probability = torch.sigmoid(torch.as_tensor(model._predict_column(0, x_new))).numpy()[:, 0]
    reference = CalibratedClassifierCV(SVC(kernel="precomputed", C=2.0), method="sigmoid", cv=3, ensemble=False)
    reference.fit(tanimoto_kernel(x, x), labels)
    np.testing.assert_allclose(probability, reference.predict_proba(tanimoto_kernel(x_new, x))[:, 1], atol=1e-6)

    values = x[:, :8].sum(1).astype(float)
    model = FingerprintModel(SVMConfig(c=2.0), REGRESSION)
    model.fitted = _fit_svm("task0.", model.config, REGRESSION, x, values, seed=0)
    reference = SVR(kernel="precomputed", C=2.0, epsilon=0.1).fit(tanimoto_kernel(x, x), values)
    np.testing.assert_allclose(model._predict_column(0, x_new)[:, 0], reference.predict(tanimoto_kernel(x_new, x)), atol=1e-9)


def tiny_run(*overrides: str) -> RunConfig:
    return RunConfig().with_overrides(["data.dataset=bace", "data.limit=160", "data.split=random", "data.rwse_steps=0",
                                       "data.lap_k=0", *overrides])


@pytest.mark.parametrize("model, options", [("rf", ["method.n_estimators=20"]), ("svm", [])])
def test_fingerprint_run_folder_reloads_safely_and_predicts_the_same(tmp_path, model, options):
    metrics = train_run(tiny_run(f"method.name={model}", *options), tmp_path / "run", progress=False)
    assert model in model_names() and metrics["model"].startswith(model) and metrics["backbone"] is None
    assert 0.0 <= metrics["test"] <= 1.0 and metrics["best_epoch"] == 1
    assert not any(key.startswith("fidelity") for key in metrics)  # no graph read, no rationale
    assert json.loads((tmp_path / "run" / "metrics.json").read_text())["test"] == metrics["test"]
    payload = read_checkpoint(tmp_path / "run")  # torch.load(weights_only=True) inside
    assert all(isinstance(value, torch.Tensor) for value in payload["state_dict"].values())
    trained = load_trained(tmp_path / "run")
    first = predict_smiles(trained, ["CCO", "c1ccccc1N", "not a smiles"], progress=False)
    again = predict_smiles(load_trained(tmp_path / "run"), ["CCO", "c1ccccc1N", "not a smiles"], progress=False)
    np.testing.assert_array_equal(first.values, again.values)
    assert np.all((first.values[:2] > 0) & (first.values[:2] < 1)) and first.errors[2]


def test_regression_fingerprint_run_predicts_in_label_units(tmp_path):
    run = tiny_run("data.dataset=esol", "method.name=rf", "method.n_estimators=10")
    metrics = train_run(run, tmp_path / "run", progress=False)
    assert metrics["metric"] == "rmse" and metrics["test"] < 3.0
    values = predict_smiles(load_trained(tmp_path / "run"), ["CCCCCCCC", "OCC(O)CO"], progress=False).values[:, 0]
    assert values[0] < values[1]  # octane is far less soluble than glycerol (log mol/L)


def test_fingerprint_model_on_graphs_without_smiles_fails_in_one_line(tmp_path):
    run = RunConfig().with_overrides(["data.dataset=spmotif-0.5", "method.name=rf", "data.limit=60"])
    with pytest.raises(IgtError, match="rf reads Morgan fingerprints of SMILES.*no SMILES"):
        train_run(run, tmp_path / "run", progress=False)


def test_bad_fingerprint_options_fail_where_the_config_is_made():
    with pytest.raises(IgtError, match="method.max_features='half'"):
        RunConfig().with_overrides(["method.name=rf", "method.max_features=half"])
    with pytest.raises(IgtError, match="method.c=0"):
        RunConfig().with_overrides(["method.name=svm", "method.c=0"])
