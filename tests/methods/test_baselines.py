"""GREA, GSAT and DIR: outputs, losses, player games, schedules, invariance, end-to-end runs."""

import importlib.util
import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from graph_testing import TOY_FEATURES, make_batch, outputs_before_and_after_permuting
from igt.config import RunConfig
from igt.data.task import TaskSpec
from igt.methods import build_method
from igt.methods.dir import dir_lambda, masked_pool, top_ratio_edges
from igt.methods.gsat import Extractor, bernoulli_kl, gsat_r, reverse_edge

FEATURES = TOY_FEATURES
METHODS = ["grea", "gsat", "dir"]


def make_method(name, *overrides, task=TaskSpec("binary")):
    torch.manual_seed(0)
    run = RunConfig().with_overrides(
        [f"method.name={name}", "backbone.hidden=16", "backbone.heads=2", "backbone.layers=2",
         "backbone.use_rwse=false", "backbone.dropout=0.0", "backbone.attn_dropout=0.0",
         "data.rwse_steps=0", "data.lap_k=0", *overrides]
    )
    return build_method(run, task, FEATURES)


def turn_epoch(model, player: str) -> int:
    """An epoch in which ``player`` trains (GREA alternates whole epochs; epoch 12 gives DIR a
    non-zero intervention weight and GSAT a decayed r)."""
    if model.config.name == "grea":
        return 1 if player == "separator" else 2
    return 12


def all_finite(values) -> bool:
    return all(math.isfinite(v) for v in values)


def play_each_player(model, batch):
    """One training step's loss and backward pass of each player in schedule order (its turn set
    by ``set_progress``); yields ``(player, loss, logs)`` with the player's gradients in place."""
    model.train()
    for player, _ in model.schedule():
        model.set_progress(turn_epoch(model, player), 50)
        model.zero_grad(set_to_none=True)
        loss, logs = model.player_loss(batch, player)
        loss.backward()
        yield player, loss, logs


@pytest.mark.parametrize("name", METHODS)
@pytest.mark.parametrize("task", [TaskSpec("binary", num_tasks=2), TaskSpec("multiclass", num_classes=3)])
def test_mixed_sizes_give_finite_losses_gradients_and_valid_scores(name, task):
    batch, _ = make_batch([1, 5, 200, 2, 5], task=task)
    if task.type == "binary":
        batch.y[1, 0] = float("nan")  # a missing label is masked, not propagated
    model = make_method(name, task=task)
    for player, loss, logs in play_each_player(model, batch):
        assert torch.isfinite(loss) and logs and all_finite(logs.values())
        grads = [p.grad for p in model.player_parameters(player) if p.grad is not None]
        assert grads and all(torch.isfinite(g).all() for g in grads)
    model.eval()
    out = model(batch)
    assert out.pred.shape == (5, task.out_dim)
    assert out.node_scores.shape == (batch.num_nodes,) and out.edge_scores.shape == (batch.num_edges,)
    for scores in (out.node_scores, out.edge_scores):
        assert ((scores >= 0) & (scores <= 1)).all()
    assert out.losses == {}


@pytest.mark.parametrize("name", METHODS)
@pytest.mark.parametrize("sizes, norm", [([6], "batch"), ([1], "layer")])
def test_batch_of_one_graph_is_finite(name, sizes, norm):
    """One graph (even one node without edges): batch-level interventions degenerate to the
    graph with its own environment; nothing is NaN."""
    batch, _ = make_batch(sizes)
    model = make_method(name, f"backbone.norm={norm}")
    for player, loss, logs in play_each_player(model, batch):
        assert torch.isfinite(loss) and all_finite(logs.values())
        if name == "dir" and player == "model":
            assert logs["int_var"] == 0.0
    model.eval()
    out = model(batch)
    assert out.pred.shape == (1, 1) and torch.isfinite(out.pred).all()


@pytest.mark.parametrize("name", METHODS)
def test_a_few_steps_reduce_the_training_loss(name):
    batch, _ = make_batch([5, 7, 4, 6, 8, 3], seed=3)
    model = make_method(name, "method.extractor_dropout=0.0" if name == "gsat" else "method.pooling=mean")
    model.train()
    optimizers = {p: torch.optim.Adam(list(model.player_parameters(p)), lr=5e-3) for p, _ in model.schedule()}

    def model_loss():
        model.set_progress(turn_epoch(model, "model"), 50)
        torch.manual_seed(7)  # the same concrete noise before and after
        return model.player_loss(batch, "model")[0].item()

    before = model_loss()
    for _ in range(15):
        for player, steps in model.schedule():
            model.set_progress(turn_epoch(model, player), 50)
            for _ in range(steps):
                model.zero_grad(set_to_none=True)
                model.player_loss(batch, player)[0].backward()
                optimizers[player].step()
    assert model_loss() < before


@pytest.mark.parametrize(
    "epoch, expected", [(1, 0.9), (10, 0.9), (11, 0.8), (20, 0.8), (21, 0.7), (30, 0.7), (200, 0.7)]
)
def test_gsat_r_decays_by_0_1_every_10_epochs_down_to_0_7(epoch, expected):
    assert gsat_r(epoch, init_r=0.9, decay_r=0.1, decay_interval=10, final_r=0.7) == pytest.approx(expected)
    model = make_method("gsat")
    model.set_progress(epoch, 200)
    assert model.r == pytest.approx(expected)


def test_gsat_r_with_other_settings_and_kl():
    assert gsat_r(41, 0.9, 0.1, 20, 0.5) == pytest.approx(0.7)
    assert gsat_r(1000, 0.9, 0.1, 20, 0.5) == pytest.approx(0.5)
    assert gsat_r(7, 0.6, 0.1, 1, 0.6) == pytest.approx(0.6)  # fixed r
    att = torch.tensor([0.7, 0.7])
    assert bernoulli_kl(att, 0.7).item() == pytest.approx(0.0, abs=1e-5)
    assert bernoulli_kl(torch.tensor([0.99]), 0.7).item() > bernoulli_kl(torch.tensor([0.8]), 0.7).item() > 0
    assert bernoulli_kl(torch.zeros(0), 0.7).item() == 0.0


def test_gsat_edge_attention_is_symmetric_and_deterministic_in_eval():
    batch, _ = make_batch([5, 9, 1])
    model = make_method("gsat")
    rev = reverse_edge(batch.edge_index, batch.num_nodes)
    assert (rev >= 0).all() and torch.equal(batch.edge_index[:, rev], batch.edge_index.flip(0))
    model.train()
    torch.manual_seed(1)
    train_att = model(batch).edge_scores
    assert torch.allclose(train_att, train_att[rev])
    model.eval()
    first, second = model(batch), model(batch)
    assert torch.equal(first.edge_scores, second.edge_scores)
    assert torch.allclose(first.edge_scores, first.edge_scores[rev])


def test_gsat_node_attention_lifts_to_edges():
    batch, _ = make_batch([5, 9])
    model = make_method("gsat", "method.attention=node")
    model.eval()
    out = model(batch)
    src, dst = batch.edge_index
    assert torch.allclose(out.edge_scores, out.node_scores[src] * out.node_scores[dst])


@pytest.mark.parametrize("on_edges", [True, False])
def test_gsat_instance_norm_extractor_ignores_a_per_graph_shift_of_the_embeddings(on_edges):
    """GSAT's per-graph InstanceNorm: a constant added to every embedding of one graph (what a
    graph-level bias in the encoder does) cannot move that graph's scores; without it, it does."""
    batch, _ = make_batch([5, 9, 1])
    torch.manual_seed(0)
    h = torch.randn(batch.num_nodes, 16)
    shift = torch.randn(batch.num_graphs, 16)[batch.batch] * 5
    for norm, invariant in (("instance", True), ("none", False)):
        torch.manual_seed(0)
        extractor = Extractor(16, on_edges=on_edges, dropout=0.0, norm=norm).eval()
        before = extractor(h, batch.edge_index, batch.batch, batch.num_graphs)
        after = extractor(h + shift, batch.edge_index, batch.batch, batch.num_graphs)
        assert before.shape == (batch.edge_index.shape[1] if on_edges else batch.num_nodes,)
        assert torch.allclose(before, after, atol=1e-4) is invariant


def test_gsat_extractor_without_norm_keeps_the_parameters_of_runs_made_before_the_norm():
    # Run folders committed before ``extractor_norm`` existed record ``none``; their checkpoints
    # must load and their runs regenerate, so the layers and their initialisation order stay.
    assert list(Extractor(8, on_edges=True, dropout=0.5, norm="none").state_dict()) == [
        "mlp.0.weight", "mlp.0.bias", "mlp.3.weight", "mlp.3.bias", "mlp.6.weight", "mlp.6.bias"]
    assert make_method("gsat").config.extractor_norm == "instance"


def test_gsat_configs_saved_before_the_norm_existed_load_without_it():
    """Regression: a run folder's full config.yaml written before ``extractor_norm`` existed loaded
    with today's default (``instance``), so `igt train --config` and `igt reproduce` took a run
    trained without the norm for one with it."""
    from igt.config import RunConfig

    saved = RunConfig().with_overrides(["method.name=gsat"]).to_dict()
    del saved["method"]["extractor_norm"]
    assert RunConfig.from_dict(saved).method.extractor_norm == "none"
    partial = {"method": {"name": "gsat", "init_r": 0.8}}  # hand-written: today's default
    assert RunConfig.from_dict(partial).method.extractor_norm == "instance"
    saved["method"]["extractor_norm"] = "instance"
    assert RunConfig.from_dict(saved).method.extractor_norm == "instance"


def test_reverse_edge_without_partner_is_minus_one():
    edge_index = torch.tensor([[0, 1, 1, 2], [1, 0, 2, 3]])
    assert reverse_edge(edge_index, 4).tolist() == [1, 0, -1, -1]
    assert reverse_edge(torch.zeros(2, 0, dtype=torch.long), 3).numel() == 0


def test_top_ratio_edges_keeps_floor_r_e_per_graph():
    scores = torch.tensor([0.1, 0.9, 0.5, 0.3, 0.8, 0.2, 0.7, 0.6, 0.4])
    group = torch.tensor([0, 0, 0, 0, 1, 1, 2, 2, 2])
    keep = top_ratio_edges(scores, group, 4, 0.5)  # graph 3 has no edges
    assert keep.tolist() == [False, True, True, False, True, False, True, False, False]


@pytest.mark.parametrize("ratio", [0.25, 0.5, 0.8])
def test_dir_keeps_the_right_number_of_edges_per_graph(ratio):
    sizes = [1, 2, 5, 9, 30]
    batch, _ = make_batch(sizes)
    model = make_method("dir", f"method.causal_ratio={ratio}")
    model.eval()
    out = model(batch)
    kept = torch.zeros(len(sizes)).index_add_(0, batch.batch[batch.edge_index[0]], out.extras["causal_edges"])
    expected = [math.floor(ratio * 2 * (n - 1) + 1e-9) for n in sizes]
    assert kept.tolist() == expected
    # The kept edges are each graph's highest-scoring ones.
    for g in range(len(sizes)):
        in_graph = batch.batch[batch.edge_index[0]] == g
        scores, mask = out.edge_scores[in_graph], out.extras["causal_edges"][in_graph].bool()
        if mask.any() and (~mask).any():
            assert scores[mask].min() >= scores[~mask].max()


def test_dir_lambda_schedule():
    assert dir_lambda(1, 1e-2) == 0.0
    assert dir_lambda(11, 1e-2) == pytest.approx(1e-2 * 10**1.6)
    model = make_method("dir", "method.alpha=0.01")
    model.set_progress(3, 10)
    assert model.lam == pytest.approx(0.01 * 2**1.6)


def test_masked_pool_falls_back_to_all_nodes():
    h = torch.tensor([[1.0], [3.0], [5.0], [7.0]])
    batch = torch.tensor([0, 0, 1, 1])
    mask = torch.tensor([True, False, False, False])
    assert masked_pool(h, mask, batch, "mean", 2).view(-1).tolist() == [1.0, 6.0]
    assert masked_pool(h, mask, batch, "sum", 2).view(-1).tolist() == [1.0, 12.0]
    assert masked_pool(h, mask, batch, "max", 2).view(-1).tolist() == [1.0, 7.0]


@pytest.mark.parametrize("name, players", [("grea", ("separator", "model")), ("dir", ("spurious", "model"))])
def test_players_partition_the_parameters(name, players):
    model = make_method(name)
    assert [p for p, _ in model.schedule()] == list(players)
    first, second = ({id(p) for p in model.player_parameters(player)} for player in players)
    assert first and second and not first & second
    assert first | second == {id(p) for p in model.parameters()}


def test_gsat_has_one_player_over_everything():
    model = make_method("gsat")
    assert model.schedule() == [("model", 1)]
    assert len(list(model.player_parameters("model"))) == len(list(model.parameters()))
    separate = make_method("gsat", "method.shared_encoder=false")
    assert separate.extractor_encoder is not None


def test_dir_spurious_player_trains_only_the_spurious_head_and_model_loss_ignores_it():
    batch, _ = make_batch([5, 7, 4])
    model = make_method("dir")
    model.train()
    model.set_progress(12, 50)
    loss, _ = model.player_loss(batch, "spurious")
    loss.backward()
    spurious = {id(p) for p in model.player_parameters("spurious")}
    assert all(p.grad is None for p in model.parameters() if id(p) not in spurious)
    model.zero_grad(set_to_none=True)
    model.player_loss(batch, "model")[0].backward()
    assert all(p.grad is None for p in model.player_parameters("spurious"))


def test_grea_alternates_whole_epochs_and_off_turn_player_does_not_move():
    model = make_method("grea")
    turns = []
    for epoch in range(1, 9):
        model.set_progress(epoch, 8)
        turns.append(model.active_player())
    assert turns == ["separator", "model", "model", "model"] * 2
    batch, _ = make_batch([5, 7, 4])
    model.train()
    model.set_progress(2, 8)  # the model's turn: the separator sits out
    before = [p.detach().clone() for p in model.player_parameters("separator")]
    optimizer = torch.optim.Adam(list(model.player_parameters("separator")), lr=0.1, weight_decay=0.1)
    model.zero_grad(set_to_none=True)
    loss, logs = model.player_loss(batch, "separator")
    loss.backward()
    optimizer.step()
    assert logs == {}
    assert all(torch.equal(a, b) for a, b in zip(before, model.player_parameters("separator")))
    batch_mode = make_method("grea", "method.alternation=batch", "method.predictor_turns=2")
    assert batch_mode.schedule() == [("separator", 1), ("model", 2)] and batch_mode.active_player() is None


def test_grea_environment_replacement_pairs_every_rationale_with_every_environment():
    batch, _ = make_batch([5, 7, 4, 6])
    model = make_method("grea", "method.separator_dropout=0.0")
    model.train()
    model.set_progress(2, 8)
    losses = model(batch).losses
    assert set(losses) == {"rat", "aug", "size"}
    with torch.no_grad():
        model.separator.gate[-1].weight.zero_()
        model.separator.gate[-1].bias.fill_(60.0)  # every node in the rationale: environments are 0
        out = model(batch)
    assert out.losses["aug"].item() == pytest.approx(out.losses["rat"].item(), rel=1e-5)
    assert out.losses["size"].item() == pytest.approx(0.6, abs=1e-5)


@pytest.mark.parametrize("name", METHODS)
@given(seed=st.integers(min_value=0, max_value=10_000))
@settings(max_examples=4, deadline=None, derandomize=True)
def test_node_permutation_keeps_prediction_and_permutes_scores(name, seed):
    _, dataset = make_batch([6, 9], seed=seed % 7)
    model = make_method(name)
    model.eval()
    original, moved, perm = outputs_before_and_after_permuting(model, dataset, seed)
    assert torch.allclose(original.pred, moved.pred, atol=1e-5)
    assert torch.allclose(original.node_scores[6:][perm], moved.node_scores[6:], atol=1e-5)
    assert torch.allclose(original.edge_scores, moved.edge_scores, atol=1e-5)  # edge order is unchanged


def test_two_epochs_end_to_end_on_spurious_motif():
    """The trainer drives every method for 2 epochs: schedules, set_progress, evaluation."""
    from igt.data.spmotif import generate_spmotif
    from igt.train.trainer import fit, make_loaders

    dataset = generate_spmotif(0.5, seed=0, sizes=(24, 6, 6))
    split = {
        name: torch.nonzero(dataset.graph_data["split"] == i).view(-1)
        for i, name in enumerate(("train", "valid", "test"))
    }
    for name in METHODS:
        run = RunConfig().with_overrides(
            [f"method.name={name}", "backbone.hidden=16", "backbone.heads=2", "backbone.layers=2",
             "backbone.use_rwse=false", "data.rwse_steps=0", "data.lap_k=0",
             "train.epochs=2", "train.batch_size=12"]
        )
        torch.manual_seed(0)
        method = build_method(run, dataset.task, dataset.features)
        result = fit(method, make_loaders(dataset, split, run.train), run.train, progress=False)
        assert len(result.history) == 2
        assert 0.0 <= result.test["metric"] <= 1.0
        assert 0.0 <= result.test["explanation_auc"] <= 1.0 and 0.0 <= result.test["edge_explanation_auc"] <= 1.0
        assert all(math.isfinite(v) for row in result.history for k, v in row.items() if k.startswith("loss/"))


def _load_dataset_ready() -> bool:
    try:
        from igt.data import load_dataset  # noqa: F401
    except ImportError:
        return False
    return importlib.util.find_spec("igt.data.splits") is not None


@pytest.mark.skipif(not _load_dataset_ready(), reason="igt.data.load_dataset is not available yet")
def test_two_epochs_of_train_run_on_bace(tmp_path, monkeypatch):
    from igt.run import train_run

    monkeypatch.setenv("IGT_CACHE_DIR", str(tmp_path / "cache"))
    for name in METHODS:
        run = RunConfig().with_overrides(
            # random split: the scaffold split of BACE's first 200 molecules has no negatives in valid/test
            [f"method.name={name}", "data.dataset=bace", "data.limit=200", "data.split=random", "train.epochs=2",
             "backbone.hidden=16", "backbone.heads=2", "backbone.layers=2", "train.batch_size=64"]
        )
        metrics = train_run(run, tmp_path / "runs" / name, progress=False)
        assert metrics["method"] == name and metrics["epochs"] == 2
        assert 0.0 <= metrics["test"] <= 1.0 and metrics["best_epoch"] in (1, 2)
