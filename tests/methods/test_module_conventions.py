"""PyG module conventions: every module with parameters re-initialises itself through
``reset_parameters()`` and says what it is in ``repr``."""

import pytest
import torch

from graph_testing import TOY_FEATURES, make_batch
from igt.config import RunConfig
from igt.data.task import TaskSpec
from igt.methods import METHODS, build_method
from igt.nn.backbones import BACKBONES

# Every graph model (the fingerprint baselines hold fitted tensors, no parameters: tests/test_fingerprint.py).
CASES = [("erm", backbone) for backbone in BACKBONES.names()] + [
    (m, "gin") for m in METHODS.names() if m != "erm" and METHODS.get(m).model.reads_graph]


@pytest.mark.parametrize("method, backbone", CASES, ids=[f"{m}-{b}" for m, b in CASES])
def test_every_module_resets_its_parameters_and_shows_its_options(method, backbone):
    torch.manual_seed(0)
    run = RunConfig().with_overrides(
        [f"method.name={method}", f"backbone.name={backbone}", "backbone.hidden=8", "backbone.heads=2",
         "backbone.layers=1", "backbone.use_rwse=false", "data.rwse_steps=0", "data.lap_k=0"])
    model = build_method(run, TaskSpec("binary"), TOY_FEATURES).eval()
    for name, module in model.named_modules():
        if any(True for _ in module.parameters(recurse=False)):
            assert hasattr(module, "reset_parameters"), f"{name or 'top'} ({type(module).__name__}) lacks reset_parameters"
    for module in model.modules():  # igt's own modules (torch's show their sizes already)
        if type(module).__module__.startswith("igt.") and any(True for _ in module.parameters()):
            assert type(module).extra_repr is not torch.nn.Module.extra_repr, f"{type(module).__name__} lacks extra_repr"

    batch, _ = make_batch([3, 4, 5])
    with torch.no_grad():
        before = model(batch).pred
    weights = [p.detach().clone() for p in model.parameters()]
    model.reset_parameters()
    changed = [not torch.equal(w, p) for w, p in zip(weights, model.parameters()) if w.numel() > 1 and w.std() > 0]
    assert changed and all(changed), "reset_parameters left some weight tensors untouched"
    with torch.no_grad():
        after = model(batch).pred
    assert after.shape == before.shape and torch.isfinite(after).all()

    text = repr(model)
    assert f"name={method!r}" in text and "pooling=" in text and "out_dim=1" in text
    assert f"name={backbone!r}" in text and "hidden=8" in text
