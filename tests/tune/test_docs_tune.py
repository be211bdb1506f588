"""Runs the Python and `bash` blocks of docs/fine-tuning.md, in order, in a scratch directory."""

from __future__ import annotations

from pathlib import Path

from ..docs_runner import blocks, run_commands, run_python


def test_fine_tuning_doc_runs(tmp_path: Path):
    prepare, api, peft = blocks("fine-tuning.md", "python")
    run_python(prepare, tmp_path)
    outputs = run_commands("fine-tuning.md", tmp_path)
    assert "val_response_loss" in outputs[1] and "val_pair_accuracy" in outputs[2]
    assert "val_reward_margin" in outputs[3] and "after_val_kl" in outputs[4]
    assert (tmp_path / "runs" / "lora" / "adapters.safetensors").exists()
    assert outputs[6].startswith("<|user|>Translate to French: Thank you.")
    out = run_python(api, tmp_path)
    assert "after_val_score" in out and out.strip().endswith("True")
    assert run_python(peft, tmp_path).split() == ["True", "True"]  # peft and genloom agree, both ways
