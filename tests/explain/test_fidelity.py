"""Fidelity, characterization and post-hoc explainers (igt.explain.metrics), and the GINE layer
as a PyG MessagePassing module that PyG's edge masks reach."""

from __future__ import annotations

import csv
import json
import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch_geometric.explain.algorithm.utils import clear_masks, set_masks
from torch_geometric.nn import MessagePassing

from graph_testing import TOY_FEATURES, make_batch
from igt.config import BackboneConfig, DataConfig, ExplainConfig, RunConfig
from igt.data.task import TaskSpec
from igt.errors import IgtError
from igt.explain.metrics import (
    MaskableModel, intrinsic_fidelity, is_explanation_key, model_config, presence, rationale_explanation,
    scoring_explainer,
)
from igt.methods import build_method
from igt.run import update_run_metrics
from igt.nn.backbones import build_backbone
from igt.nn.layers import GINEConv
from igt.results import results_markdown, run_row, write_results_csv
from igt.run import train_run

torch.set_num_threads(1)


def reference_gine(conv: GINEConv, x, edge_index, edge_emb, edge_weight=None):
    """The layer as it was written before MessagePassing: index_select / index_add_."""
    messages = F.relu(x.index_select(0, edge_index[0]) + edge_emb)
    if edge_weight is not None:
        messages = messages * edge_weight.view(-1, 1)
    aggregated = messages.new_zeros(x.shape).index_add_(0, edge_index[1], messages)
    return conv.mlp(x * (1 + conv.eps) + aggregated)


def random_layer_inputs(seed=0, n=30, e=80, d=8):
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(n, d, generator=g), torch.randint(0, n, (2, e), generator=g),
            torch.randn(e, d, generator=g), torch.rand(e, generator=g))


def make_conv(d=8):
    torch.manual_seed(0)
    conv = GINEConv(nn.Sequential(nn.Linear(d, 2 * d), nn.ReLU(), nn.Linear(2 * d, d)))
    with torch.no_grad():
        conv.eps.fill_(0.3)
    return conv


def test_gine_is_message_passing_with_the_same_parameters_and_sums():
    conv = make_conv()
    assert isinstance(conv, MessagePassing) and conv.aggr == "add"
    assert set(conv.state_dict()) == {"eps", "mlp.0.weight", "mlp.0.bias", "mlp.2.weight", "mlp.2.bias"}
    for seed in range(3):
        x, edge_index, edge_emb, weight = random_layer_inputs(seed)
        torch.testing.assert_close(conv(x, edge_index, edge_emb), reference_gine(conv, x, edge_index, edge_emb),
                                   atol=1e-6, rtol=1e-6)
        torch.testing.assert_close(conv(x, edge_index, edge_emb, weight),
                                   reference_gine(conv, x, edge_index, edge_emb, weight), atol=1e-6, rtol=1e-6)
    empty = torch.zeros(2, 0, dtype=torch.long)
    torch.testing.assert_close(conv(x, empty, edge_emb[:0]), conv.mlp(x * 1.3), atol=1e-6, rtol=1e-6)


def test_pyg_edge_mask_reaches_gine_layer_and_backbone():
    conv = make_conv()
    x, edge_index, edge_emb, weight = random_layer_inputs()
    no_edges = conv(x, edge_index[:, :0], edge_emb[:0])
    set_masks(conv, torch.zeros(edge_index.shape[1]), edge_index, apply_sigmoid=False)
    torch.testing.assert_close(conv(x, edge_index, edge_emb), no_edges)
    set_masks(conv, weight, edge_index, apply_sigmoid=False)
    torch.testing.assert_close(conv(x, edge_index, edge_emb), reference_gine(conv, x, edge_index, edge_emb, weight),
                               atol=1e-6, rtol=1e-6)
    clear_masks(conv)
    torch.testing.assert_close(conv(x, edge_index, edge_emb), reference_gine(conv, x, edge_index, edge_emb))

    batch, _ = make_batch([5, 4, 6])
    for name in ("gin", "gps"):
        torch.manual_seed(0)
        backbone = build_backbone(BackboneConfig(name=name, hidden=16, heads=2, layers=2, use_rwse=False),
                                  TOY_FEATURES, DataConfig(rwse_steps=0, lap_k=0)).eval()
        mask = torch.rand(batch.edge_index.shape[1], generator=torch.Generator().manual_seed(1))
        set_masks(backbone, mask, batch.edge_index, apply_sigmoid=False)
        masked = backbone(batch)
        clear_masks(backbone)
        torch.testing.assert_close(masked, backbone(batch, edge_weight=mask), atol=1e-6, rtol=1e-6)


def tiny_method(name="erm", backbone="gin", task=TaskSpec("binary")):
    torch.manual_seed(0)
    run = RunConfig().with_overrides([f"method.name={name}", f"backbone.name={backbone}", "backbone.hidden=16",
                                      "backbone.heads=2", "backbone.layers=2", "data.rwse_steps=0", "data.lap_k=0",
                                      "backbone.use_rwse=false"] + (["method.intervener_heads=2"] if name.startswith("igt") else []))
    return build_method(run, task, TOY_FEATURES).eval()


@pytest.mark.parametrize("backbone", ["gin", "gin-vn", "gps", "gt"])
def test_a_removed_node_says_nothing_about_its_features_or_edges(backbone):
    """Presence 0 makes a node featureless and cuts its messages (it still exists: pooling,
    virtual node and global attention see a zero-embedded node). GT's edges of a removed node
    still enter its kept neighbours' softmax normalisation, so only node features are changed there."""
    method = tiny_method(backbone=backbone)
    batch, _ = make_batch([6, 5])
    model = MaskableModel(method, batch)
    with torch.no_grad():
        full = model(presence(batch), batch.edge_index)
        torch.testing.assert_close(full, method(batch).pred)
        keep = torch.ones(batch.x.shape[0], 1)
        keep[[1, 3, 8]] = 0.0
        before = model(keep, batch.edge_index)
        changed = batch.clone()
        changed.x[[1, 3, 8]] = (changed.x[[1, 3, 8]] + 1) % 3
        touches = (keep[batch.edge_index[0], 0] == 0) | (keep[batch.edge_index[1], 0] == 0)
        if backbone != "gt":
            changed.edge_attr[touches] = 1 - changed.edge_attr[touches]
        model.batch = changed
        after = model(keep, changed.edge_index)
        assert not torch.allclose(model(presence(changed), changed.edge_index), full)  # the change matters unmasked
    torch.testing.assert_close(after, before, atol=1e-6, rtol=1e-6)


def test_rationale_is_each_graphs_top_ratio_nodes_and_their_internal_edges():
    method = tiny_method()
    batch, _ = make_batch([5, 10])
    model = MaskableModel(method, batch)
    explainer = scoring_explainer(model, method.task)
    scores = torch.tensor([0.1, 0.9, 0.8, 0.2, 0.3] + [i / 10 for i in range(10)])
    pred = torch.tensor([[0.5], [-1.0]])
    explanation = rationale_explanation(pred, scores, batch, 0.3, explainer)
    kept = explanation.node_mask.view(-1)
    assert kept.tolist() == [0, 1, 1, 0, 0] + [0] * 7 + [1, 1, 1]  # ceil(0.3 * 5) = 2, ceil(0.3 * 10) = 3
    src, dst = batch.edge_index
    assert explanation.edge_mask.tolist() == (kept[src] * kept[dst]).tolist()
    assert explanation.target.tolist() == [1, 0] and explanation.x.shape == (15, 1)


def test_fidelity_is_pygs_model_fidelity_of_the_hard_rationale():
    method = tiny_method("igt-n")
    batch, _ = make_batch([5, 7, 4, 6, 8, 5, 9, 3, 6, 7], seed=3)
    with torch.no_grad():  # centre the untrained logits so that masking flips some classes
        method.predictor.mlp[-1].bias -= method(batch).pred.median()
    result = intrinsic_fidelity(method, [batch], ratio=0.4)
    assert 0 < result["fidelity_plus"] < 1 and 0 < result["fidelity_minus"] < 1
    model = MaskableModel(method, batch)
    with torch.no_grad():
        out = method(batch)
        from igt.methods.igt import hard_top_ratio

        kept = hard_top_ratio(out.node_scores, batch.ptr, 0.4).view(-1, 1)
        cls = (out.pred > 0).long().view(-1)
        only = (model(kept, batch.edge_index) > 0).long().view(-1)
        without = (model(1 - kept, batch.edge_index) > 0).long().view(-1)
    assert result["fidelity_plus"] == pytest.approx(float((without != cls).float().mean()))
    assert result["fidelity_minus"] == pytest.approx(float((only != cls).float().mean()))
    plus, minus = result["fidelity_plus"], result["fidelity_minus"]
    expected = 0.0 if plus == 0 or minus == 1 else 1 / (0.5 / plus + 0.5 / (1 - minus))
    assert result["characterization"] == pytest.approx(expected)
    assert intrinsic_fidelity(tiny_method("erm"), [batch], 0.4) == {}  # no scores, no fidelity
    regression = tiny_method("igt-n", task=TaskSpec("regression"))
    assert model_config(regression.task) is None and intrinsic_fidelity(regression, [batch], 0.4) == {}


def test_explain_config_section_is_typed_and_old_configs_load(tmp_path):
    run = RunConfig().with_overrides(["explain.posthoc=gnnexplainer", "explain.fidelity_ratio=0.3"])
    assert run.explain.posthoc == ["gnnexplainer"] and run.explain.fidelity_ratio == 0.3
    assert RunConfig().explain == ExplainConfig()
    assert ExplainConfig().posthoc == ["gnnexplainer", "pgexplainer"]
    for bad, message in [("explain.posthoc=[lime]", "unknown explainer"), ("explain.fidelity_ratio=0", "(0, 1]"),
                         ("explain.posthoc_graphs=0", ">= 1"), ("explain.fidelity=maybe", "true/false"),
                         ("explain.gnnexplainer_epochs=1.5", "integer"), ("explain.nope=1", "unknown key")]:
        with pytest.raises(IgtError, match=message.replace("(", r"\(").replace("]", r"\]")):
            RunConfig().with_overrides([bad])
    old = RunConfig().to_dict()
    del old["explain"]  # config.yaml files written before the section existed
    path = tmp_path / "config.yaml"
    path.write_text(json.dumps(old))
    assert RunConfig.load(path).explain == ExplainConfig()


SPMOTIF = [
    "data.dataset=spmotif-0.5", "data.limit=120", "backbone.hidden=16", "backbone.layers=2", "backbone.heads=2",
    "train.epochs=2", "train.batch_size=32", "explain.posthoc_graphs=16", "explain.gnnexplainer_epochs=20",
    "explain.pgexplainer_epochs=3", "explain.pgexplainer_train_graphs=32",
]


def test_train_run_writes_fidelity_and_posthoc_metrics(run_cli, tmp_path, capsys):
    erm = train_run(RunConfig().with_overrides([*SPMOTIF, "method.name=erm", "backbone.name=gin"]),
                    tmp_path / "gin", progress=False)
    gsat = train_run(RunConfig().with_overrides([*SPMOTIF, "method.name=gsat", "backbone.name=gin"]),
                     tmp_path / "gsat", progress=False)
    assert erm["posthoc_graphs"] == 16 and erm["fidelity_ratio"] == 0.2 and "fidelity_plus" not in erm
    for name in ("gnnexplainer", "pgexplainer"):
        for key in ("fidelity_plus", "fidelity_minus", "characterization", "node_auc", "edge_auc"):
            assert 0.0 <= erm[f"{name}_{key}"] <= 1.0, (name, key)
    for key in ("fidelity_plus", "fidelity_minus", "characterization"):
        assert 0.0 <= gsat[key] <= 1.0 and not any(k.startswith("gnnexplainer") for k in gsat)
    on_disk = json.loads((tmp_path / "gsat" / "metrics.json").read_text())
    assert on_disk["fidelity_plus"] == gsat["fidelity_plus"]

    # A run scored later (as runs from before this metric): the same numbers, other keys kept.
    stripped = {k: v for k, v in on_disk.items() if not is_explanation_key(k)}
    (tmp_path / "gsat" / "metrics.json").write_text(json.dumps(stripped))
    code, out, err = run_cli(["evaluate", tmp_path / "gsat", "--explanation-metrics"], capsys)
    assert code == 0, err
    rescored = json.loads((tmp_path / "gsat" / "metrics.json").read_text())
    assert rescored.pop("explain_seconds") > 0 and on_disk.pop("explain_seconds") > 0
    assert rescored == on_disk and json.loads(out)["fidelity_minus"] == gsat["fidelity_minus"]
    assert list((tmp_path / "gsat").glob(".*tmp")) == []
    assert update_run_metrics(tmp_path / "gin")["gnnexplainer_node_auc"] == erm["gnnexplainer_node_auc"]


def test_results_carry_fidelity_columns_and_a_fidelity_table(tmp_path):
    base = {"metric": "accuracy", "valid": 0.9, "test": 0.8, "epochs": 2, "train_seconds": 1.0}
    rows = []
    for seed in range(2):
        rows.append(run_row({**base, "dataset": "spmotif-0.5", "model": "gsat", "seed": seed, "method": "gsat",
                             "fidelity_plus": 0.5 + seed / 10, "fidelity_minus": 0.2, "characterization": 0.6},
                            {}, f"runs/gsat/{seed}"))
        rows.append(run_row({**base, "dataset": "spmotif-0.5", "model": "gin", "seed": seed, "method": "erm",
                             "gnnexplainer_fidelity_plus": 0.3, "gnnexplainer_fidelity_minus": 0.4,
                             "gnnexplainer_characterization": 0.45, "gnnexplainer_node_auc": 0.7,
                             "pgexplainer_fidelity_plus": 0.1, "pgexplainer_fidelity_minus": 0.9,
                             "pgexplainer_characterization": 0.1}, {}, f"runs/gin/{seed}"))
    rows.append(run_row({**base, "dataset": "bbbp", "model": "igt-n", "seed": 0, "metric": "rocauc",
                         "fidelity_plus": 0.25, "fidelity_minus": 0.5, "characterization": 1 / 3}, {}, "runs/x"))
    # Regression: variants (GSAT on GIN under GSAT's recipe) were left out of the fidelity tables.
    rows.append(run_row({**base, "dataset": "spmotif-0.5", "model": "gsat[backbone=gin]@gsat-paper", "seed": 0,
                         "method": "gsat", "fidelity_plus": 0.4, "fidelity_minus": 0.3, "characterization": 0.5},
                        {}, "runs/gsat-gin/0"))
    assert rows[0]["fidelity_plus"] == 0.5 and rows[1]["gnnexplainer_node_auc"] == 0.7
    text = results_markdown(rows, "igt reproduce", "abc")
    assert "## Fidelity on Spurious-Motif" in text and "## Fidelity on molecule classification" in text
    # The tables' explanation sits under the first fidelity heading, not under the section before it.
    assert text.index("## Fidelity on ") < text.index("Fidelity of rationales on the test split")
    assert "| gsat | **0.600 ± 0.000 (+0.550 / −0.200)** |" in text
    assert "| gin (gnnexplainer) | 0.450 ± 0.000 (+0.300 / −0.400) |" in text
    assert "| gin (pgexplainer) |" in text and "| igt-n | **0.333 (+0.250 / −0.500)** |" in text
    assert "| gsat[backbone=gin]@gsat-paper | 0.500 (+0.400 / −0.300) |" in text
    # post-hoc explanation AUC sits beside the methods' in the explanation table
    explanation = text.split("explanation ROC-AUC of node scores")[1].split("##")[0]
    assert "| gin (gnnexplainer) | **70.00 ± 0.00** |" in explanation
    write_results_csv(rows, tmp_path / "results.csv")
    with open(tmp_path / "results.csv") as handle:
        written = list(csv.DictReader(handle))
    assert math.isclose(float(written[-2]["characterization"]), 1 / 3)
    assert written[1]["pgexplainer_fidelity_minus"] == "0.9" and written[1]["fidelity_plus"] == ""


def test_explanation_metrics_leave_the_model_untouched():
    from igt.explain.metrics import posthoc_metrics

    method = tiny_method("erm")
    batch, dataset = make_batch([5, 7, 4, 6, 8, 5, 6, 7], seed=3)
    state = {k: v.clone() for k, v in method.state_dict().items()}
    split = {"train": torch.arange(4), "test": torch.arange(4, 8)}
    config = ExplainConfig(posthoc_graphs=3, gnnexplainer_epochs=5, pgexplainer_epochs=2)
    first = posthoc_metrics(method, dataset, split, config, seed=0)
    assert first["posthoc_graphs"] == 3 and "pgexplainer_fidelity_plus" in first
    assert not method.training and all(p.requires_grad for p in method.parameters())
    for key, value in method.state_dict().items():
        assert torch.equal(value, state[key]), key
    second = posthoc_metrics(method, dataset, split, config, seed=0)
    assert {k: v for k, v in first.items() if not k.endswith("seconds")} == \
        {k: v for k, v in second.items() if not k.endswith("seconds")}
    igt = tiny_method("igt-n")
    before = igt(batch).pred
    intrinsic_fidelity(igt, [batch], 0.2)
    assert not igt.training
    torch.testing.assert_close(igt(batch).pred, before)


def test_pgexplainer_gives_the_same_masks_after_gnnexplainer_ran_on_the_model():
    # Regression: GNNExplainer left an empty ``_edge_mask`` parameter slot on every GINE layer,
    # so PyG wrapped PGExplainer's masks in new leaf Parameters and its mask network never got the
    # prediction's gradient (edge AUC 0.12 instead of 0.55 on Spurious-Motif).
    from igt.explain.metrics import posthoc_metrics

    batch, dataset = make_batch([5, 7, 4, 6, 8, 5, 6, 7], seed=3)
    split = {"train": torch.arange(4), "test": torch.arange(4, 8)}
    results = {}
    for order in (("pgexplainer",), ("gnnexplainer", "pgexplainer")):
        method = tiny_method("erm")
        config = ExplainConfig(posthoc=order, posthoc_graphs=3, gnnexplainer_epochs=3, pgexplainer_epochs=3)
        out = posthoc_metrics(method, dataset, split, config, seed=0)
        results[order] = {k: v for k, v in out.items() if k.startswith("pgexplainer_") and not k.endswith("seconds")}
        assert not any("_edge_mask" in m._parameters for m in method.modules() if isinstance(m, MessagePassing))
    assert results[("pgexplainer",)] and results[("pgexplainer",)] == results[("gnnexplainer", "pgexplainer")]


@pytest.mark.parametrize("mode", ["train", "eval"])
def test_evaluation_and_explanation_give_the_model_back_in_the_mode_it_had(mode):
    # As PyG's Explainer: evaluating or explaining mid-training must not leave dropout and
    # BatchNorm statistics switched off (or on) behind the caller's back.
    from igt.explain.metrics import posthoc_metrics
    from igt.explain.pyg import explain_batch
    from igt.train.trainer import predict_batches

    batch, dataset = make_batch([5, 7, 4, 6, 8, 5, 6, 7], seed=3)
    split = {"train": torch.arange(4), "test": torch.arange(4, 8)}
    config = ExplainConfig(posthoc_graphs=3, gnnexplainer_epochs=2, pgexplainer_epochs=1)
    erm, igt = tiny_method("erm"), tiny_method("igt-n")
    for method in (erm, igt):
        method.train(mode == "train")
    calls = {
        "predict_batches": lambda: predict_batches(igt, [batch]),
        "intrinsic_fidelity": lambda: intrinsic_fidelity(igt, [batch], 0.2),
        "explain_batch": lambda: explain_batch(igt, batch),
        "posthoc_metrics": lambda: posthoc_metrics(erm, dataset, split, config, seed=0),
    }
    for name, call in calls.items():
        call()
        modes = {m.training for method in (erm, igt) for m in method.modules()}
        assert modes == {mode == "train"}, name
