"""IGT-N / IGT-VN behaviour: masks, pairing, the min-max game, invariance."""

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch_geometric.data import Batch

from graph_testing import TOY_FEATURES, make_batch, outputs_before_and_after_permuting
from igt.config import RunConfig
from igt.data.task import TaskSpec
from igt.methods import build_method
from igt.methods.igt import hard_top_ratio, random_derangement
from igt.nn.attention import PaddedLayout

FEATURES = TOY_FEATURES


def make_igt(name="igt-n", *overrides, task=TaskSpec("binary")):
    torch.manual_seed(0)
    run = RunConfig().with_overrides(
        [f"method.name={name}", "backbone.hidden=16", "backbone.heads=2", "backbone.layers=2",
         "backbone.use_rwse=false", "backbone.dropout=0.0", "backbone.attn_dropout=0.0",
         "method.intervener_heads=2", "data.rwse_steps=0", "data.lap_k=0", *overrides]
    )
    return build_method(run, task, FEATURES)


VARIANTS = [("igt-n", "soft"), ("igt-n", "hard"), ("igt-vn", "soft"), ("igt-vn", "hard")]


@pytest.mark.parametrize("name, split", VARIANTS)
def test_mixed_sizes_give_finite_losses_and_scores(name, split):
    batch, _ = make_batch([1, 5, 200, 2, 5])
    model = make_igt(name, f"method.split={split}", "method.environments=2")
    model.train()
    for player, _ in model.schedule():
        loss, logs = model.player_loss(batch, player)
        loss.backward()
        assert torch.isfinite(loss) and set(logs) >= ({"int"} if player == "adversary" else {"rat", "int", "size"})
    grads = [p.grad for p in model.parameters() if p.grad is not None]
    assert grads and all(torch.isfinite(g).all() for g in grads)
    model.eval()
    out = model(batch)
    assert out.pred.shape == (5, 1)
    assert out.node_scores.shape == (batch.num_nodes,) and out.edge_scores.shape == (batch.num_edges,)
    assert ((out.node_scores >= 0) & (out.node_scores <= 1)).all()
    if name == "igt-vn":
        assignment = out.extras["virtual_assignment"]
        assert assignment.shape == (batch.num_nodes, 8)
        # each virtual node's weights over a graph's nodes sum to one: no mass on padding
        per_graph = torch.zeros(5, 8).index_add_(0, batch.batch, assignment)
        assert torch.allclose(per_graph, torch.ones(5, 8), atol=1e-5)


def test_graph_output_does_not_depend_on_batch_mates():
    """Padding never leaks: a graph's prediction is the same alone or beside a 200-node graph."""
    batch, dataset = make_batch([5, 200, 3])
    for name in ("igt-n", "igt-vn"):
        model = make_igt(name, "backbone.norm=layer")
        model.eval()
        together = model(batch)
        alone = model(Batch.from_data_list([dataset[0]]))
        assert torch.allclose(together.pred[0], alone.pred[0], atol=1e-5)
        assert torch.allclose(together.node_scores[:5], alone.node_scores, atol=1e-5)


@pytest.mark.parametrize("all_rationale", [True, False])
def test_every_or_no_node_rationale_is_finite(all_rationale):
    batch, _ = make_batch([4, 6, 1])
    model = make_igt("igt-n")
    model.train()
    with torch.no_grad():
        last = model.augmenter.scorer[-1]
        last.weight.zero_()
        last.bias.fill_(60.0 if all_rationale else -60.0)  # sigmoid saturates to exactly 1 or ~0
    loss, logs = model.player_loss(batch, "model")
    assert torch.isfinite(loss) and all(torch.isfinite(torch.tensor(v)) for v in logs.values())


def test_batch_of_one_skips_intervention():
    batch, _ = make_batch([6])
    model = make_igt("igt-n")
    model.train()
    loss, logs = model.player_loss(batch, "model")
    assert logs["int"] == 0.0 and torch.isfinite(loss)


@given(st.integers(min_value=2, max_value=40), st.integers(min_value=0, max_value=10_000))
@settings(max_examples=50, deadline=None)
def test_derangement_never_pairs_a_graph_with_itself(size, seed):
    perm = random_derangement(size, torch.Generator().manual_seed(seed))
    assert sorted(perm.tolist()) == list(range(size))
    assert not (perm == torch.arange(size)).any()


def test_derangement_of_one_is_refused():
    with pytest.raises(ValueError):
        random_derangement(1)


def test_hard_split_keeps_ceil_gamma_n_per_graph_with_straight_through_gradient():
    scores = torch.tensor([0.9, 0.1, 0.5, 0.2, 0.8, 0.3, 0.7], requires_grad=True)
    ptr = torch.tensor([0, 4, 4 + 3])
    hard = hard_top_ratio(scores, ptr, 0.5)
    assert hard.detach().tolist() == [1, 0, 1, 0, 1, 0, 1]
    hard.sum().backward()
    assert torch.equal(scores.grad, torch.ones(7))


@pytest.mark.parametrize("name", ["igt-n", "igt-vn"])
def test_adversary_step_raises_intervention_loss_and_model_step_lowers_its_loss(name):
    batch, _ = make_batch([5, 7, 4, 6, 8, 3], seed=3)
    model = make_igt(name)
    model.train()

    def loss_of(player):
        torch.manual_seed(123)  # the same environment pairing before and after the step
        return model.player_loss(batch, player)

    adversary = torch.optim.SGD(model.player_parameters("adversary"), lr=0.5)
    before = loss_of("adversary")[1]["int"]
    model.zero_grad()
    loss_of("adversary")[0].backward()
    adversary.step()
    assert loss_of("adversary")[1]["int"] > before

    optimizer = torch.optim.SGD(list(model.player_parameters("model")), lr=0.05)
    before = loss_of("model")[0].item()
    model.zero_grad()
    loss_of("model")[0].backward()
    optimizer.step()
    assert loss_of("model")[0].item() < before


def test_shared_encoding_gives_the_same_game_step_as_separate_forwards():
    """prepare_batch() encodes once per batch; the adversary must not change what the model
    player then sees, so one shared encoding and two separate ones give the same losses."""
    batch, _ = make_batch([5, 7, 4, 6], seed=1)
    model = make_igt("igt-n")
    model.train()
    shared = model.prepare_batch(batch)
    for player in ("adversary", "model"):
        torch.manual_seed(7)
        _, with_shared = model.player_loss(batch, player, shared)
        torch.manual_seed(7)
        _, separate = model.player_loss(batch, player)
        assert with_shared == pytest.approx(separate, rel=1e-6)


def test_players_partition_the_parameters():
    model = make_igt("igt-vn")
    model_ids = {id(p) for p in model.player_parameters("model")}
    adversary_ids = {id(p) for p in model.player_parameters("adversary")}
    assert not model_ids & adversary_ids
    assert model_ids | adversary_ids == {id(p) for p in model.parameters()}
    assert adversary_ids == {id(p) for p in model.intervener.parameters()}
    cooperative = make_igt("igt-n", "method.adversarial=false")
    assert cooperative.schedule() == [("model", 1)]
    assert len(list(cooperative.player_parameters("model"))) == len(list(cooperative.parameters()))


@pytest.mark.parametrize("name", ["igt-n", "igt-vn"])
@given(seed=st.integers(min_value=0, max_value=10_000))
@settings(max_examples=10, deadline=None)
def test_node_permutation_permutes_scores_and_keeps_prediction(name, seed):
    batch, dataset = make_batch([6, 9], seed=seed % 7)
    model = make_igt(name)
    model.eval()
    original_out, permuted_out, perm = outputs_before_and_after_permuting(model, dataset, seed)
    assert torch.allclose(original_out.pred, permuted_out.pred, atol=1e-5)
    assert torch.allclose(original_out.node_scores[6:][perm], permuted_out.node_scores[6:], atol=1e-5)


@pytest.mark.parametrize("name", ["igt-n", "igt-vn"])
def test_simultaneous_game_gives_each_player_its_own_gradient(name):
    """updates=simultaneous: one backward must give the intervener the adversary's gradient
    (ascent on L_int plus the L2 term) and every other parameter the model player's gradient."""
    batch, _ = make_batch([5, 7, 4, 6], seed=2)
    model = make_igt(name, "method.alpha=0.7", "method.mu=0.01")

    def gradients(player):
        model.train()
        model.zero_grad()
        torch.manual_seed(11)  # the same environment pairing in every variant
        loss, _ = model.player_loss(batch, player)
        loss.backward()
        return {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}

    model.config.updates = "alternating"
    adversary, player = gradients("adversary"), gradients("model")
    model.config.updates = "simultaneous"
    assert model.schedule() == [("game", 1)]
    game = gradients("game")
    for name_, grad in game.items():
        expected = adversary[name_] if name_.startswith("intervener.") else player[name_]
        assert torch.allclose(grad, expected, atol=1e-6), name_
    groups = model.player_param_groups("game", RunConfig().train)
    assert [g["lr"] for g in groups] == [RunConfig().train.lr, model.config.adversary_lr]


def test_intervener_readout_equals_a_full_transformer_block_per_pairing():
    """z (§3) is the readout over rationale positions of T_int([R_b; E_pi(b)]). The intervener
    skips the environment tokens' queries and feed-forward; z must equal the block applied to
    every token of each pairing on its own."""
    model = make_igt("igt-n").eval()
    block = model.intervener
    torch.manual_seed(1)
    sizes = [3, 2]
    tokens, scores = torch.randn(5, 16), torch.rand(5)
    ptr = torch.tensor([0, 3, 5])
    with torch.no_grad():
        z = model._intervene(tokens, scores, ptr, num_graphs=2)  # the only derangement of 2 is a swap
        expected = []
        for b, env in ((0, 1), (1, 0)):
            rat, envs = slice(ptr[b], ptr[b + 1]), slice(ptr[env], ptr[env + 1])
            x = torch.cat([scores[rat, None] * tokens[rat], (1 - scores[envs, None]) * tokens[envs]])
            kinds = torch.tensor([0] * sizes[b] + [1] * sizes[env])
            x = x + block.type_embedding(kinds)
            one_set = PaddedLayout.from_batch(torch.zeros(len(x), dtype=torch.long), 1)
            x = x + block.attention(block.norm_attn(x), one_set)
            x = x + block.feed_forward(block.norm_ff(x))
            w = scores[rat]
            expected.append((w[:, None] * x[: sizes[b]]).sum(0) / (w.sum() + 1e-8))
    torch.testing.assert_close(z, torch.stack(expected), atol=1e-5, rtol=1e-4)
