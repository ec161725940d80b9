import pytest

from igt.config import RunConfig
from igt.errors import IgtError


def test_overrides_are_typed_and_validated():
    run = RunConfig().with_overrides(["train.lr=0.01", "backbone.name=gin", "data.limit=5", "data.target_columns=[a, b]"])
    assert run.train.lr == 0.01 and isinstance(run.train.lr, float)
    assert run.backbone.name == "gin" and run.data.limit == 5 and run.data.target_columns == ["a", "b"]


@pytest.mark.parametrize(
    "override, message",
    [
        ("train.lrr=1", "unknown key(s) ['lrr']"),
        ("train.epochs=abc", "train.epochs: expected an integer"),
        ("backbone.use_rwse=maybe", "expected true/false"),
        ("nosection.a=1", "unknown section"),
        ("epochs=3", "expected section.key=value"),
        ("method.name=nonexistent", "unknown method 'nonexistent'"),
    ],
)
def test_bad_overrides_give_one_line_errors(override, message):
    with pytest.raises(IgtError, match=None) as info:
        RunConfig().with_overrides([override])
    assert message in str(info.value) and "\n" not in str(info.value)


def test_yaml_round_trip(tmp_path):
    run = RunConfig().with_overrides(["train.epochs=3", "data.dataset=bace"])
    run.save(tmp_path / "c.yaml")
    assert RunConfig.load(tmp_path / "c.yaml") == run


def test_load_rejects_non_mapping(tmp_path):
    (tmp_path / "c.yaml").write_text("- 1\n- 2\n")
    with pytest.raises(IgtError, match="mapping"):
        RunConfig.load(tmp_path / "c.yaml")


@pytest.mark.parametrize(
    "override, message",
    [
        ("train.epochs=0", "train.epochs=0: expected at least 1"),
        ("train.lr=0", "train.lr=0.0: expected a number above 0"),
        ("data.limit=0", "data.limit=0: expected at least 1"),
        ("data.split_fractions=[0.5, 0.6, 0.1]", "data.split_fractions=[0.5, 0.6, 0.1]: expected three numbers"),
        ("backbone.norm=group", "backbone.norm='group': expected one of batch, layer"),
        ("method.pooling=median", "method.pooling='median': expected one of mean, sum, max"),
    ],
)
def test_values_are_range_checked_where_configs_are_made(override, message):
    with pytest.raises(IgtError) as info:
        RunConfig().with_overrides([override])
    assert message in str(info.value) and "\n" not in str(info.value)


def test_method_options_are_range_checked_and_file_errors_name_the_file(tmp_path):
    for name, bad in [("igt-n", "method.adversary_steps=0"), ("grea", "method.gamma=0"),
                      ("gsat", "method.temperature=0"), ("dir", "method.causal_ratio=1.5")]:
        with pytest.raises(IgtError, match=bad.split("=")[0]):
            RunConfig().with_overrides([f"method.name={name}", bad])
    (tmp_path / "c.yaml").write_text("train: {epochs: 0}\n")
    with pytest.raises(IgtError, match=r"c\.yaml: train\.epochs=0: expected at least 1"):
        RunConfig.load(tmp_path / "c.yaml")


def test_configs_parse_every_built_in_method_without_importing_torch():
    # The config layer sits below the models: `igt tune --show-space` and config checks stay light,
    # and igt.config no longer imports igt.methods (it was the last import cycle).
    import subprocess
    import sys

    code = ("import sys; from igt.config import RunConfig, METHOD_OPTIONS\n"
            "for name in METHOD_OPTIONS: RunConfig().with_overrides([f'method.name={name}'])\n"
            "print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


def test_a_plug_in_method_registers_its_options_with_its_model(monkeypatch):
    from dataclasses import dataclass

    from igt.config import METHOD_CONFIGS, MethodConfig, check_positive
    from igt.methods import METHODS, register_method
    from igt.methods.erm import ERM

    @dataclass
    class ToyOptions(MethodConfig):
        strength: float = 1.0

        def __post_init__(self) -> None:
            super().__post_init__()
            check_positive("method.strength", self.strength)

    for registry in (METHODS, METHOD_CONFIGS):  # the plug-in is gone again after the test
        monkeypatch.setattr(registry, "_items", dict(registry._items))
    register_method("toy-plugin", ToyOptions, ERM)
    run = RunConfig().with_overrides(["method.name=toy-plugin", "method.strength=2.5"])
    assert isinstance(run.method, ToyOptions) and run.method.strength == 2.5
    with pytest.raises(IgtError, match="method.strength=-1"):
        RunConfig().with_overrides(["method.name=toy-plugin", "method.strength=-1"])
