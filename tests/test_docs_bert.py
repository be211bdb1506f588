"""Runs every `bash` block and the Python block of docs/bert.md in a scratch directory."""

from .docs_runner import blocks, run_commands, run_python


def test_bert_doc_runs(tmp_path):
    outputs = run_commands("bert.md", tmp_path)
    assert len(outputs) == 5
    assert outputs[1].startswith("[MASK] #1:") and len(outputs[1].splitlines()) == 6
    assert "masked-token accuracy" in outputs[2]
    assert (tmp_path / "hf" / "bert-debug" / "model.safetensors").exists()
    (python,) = blocks("bert.md", "python")
    assert "torch.Size([2, 32])" in run_python(python, tmp_path)
