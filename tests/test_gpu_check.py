"""scripts/gpu_check.py, the prepared GPU check, runs on the CPU too, so it cannot rot between loans."""

import importlib.util
import json
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "gpu_check.py"


def test_the_gpu_check_script_runs_end_to_end_on_the_cpu(tmp_path):
    spec = importlib.util.spec_from_file_location("gpu_check", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    report = module.main(["--device", "cpu", "--limit", "600", "--hidden", "8", "--bench-batches", "1", "--profile-steps", "2",
                          "--out", str(tmp_path / "check.json")])
    assert set(report["train_one_epoch"]) == set(module.MODELS)
    assert report["cpu_vs_device"]["max_abs_difference"] == 0.0  # the same device: identical
    assert report["gps_vs_pyg"]["gps_graphs_per_s"] > 0
    profile = report["precision_profile"]
    assert profile["fp32"]["steps"] == 2 and profile["bf16"]["top_ops"] and profile["bf16_vs_fp32"] > 0
    assert profile["bf16_without_cudnn_attention"]["top_ops"] and profile["bf16_without_cudnn_attention_vs_fp32"] > 0
    assert json.loads((tmp_path / "check.json").read_text())["device"] == "cpu"
