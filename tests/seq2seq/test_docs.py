"""Runs every `bash` block and every Python block of docs/translation.md in a scratch directory."""

from ..docs_runner import blocks, run_commands, run_python


def test_translation_doc_runs(tmp_path):
    outputs = run_commands("translation.md", tmp_path)
    assert len(outputs) == 4
    assert len(outputs[1].splitlines()) == 1 and len(outputs[2].splitlines()) == 1
    assert outputs[3].startswith("BLEU ")
    card = (tmp_path / "runs" / "s2s-debug" / "card.md").read_text()
    assert "CC-BY 2.0 (France)" in card and "bleu" in card  # the bundled data's license, the evaluation
    api, engine = blocks("translation.md", "python")
    assert "'bleu', 'bleu_signature', 'checkpoint', 'chrf'" in run_python(api, tmp_path)
    assert run_python(engine, tmp_path).count(",") >= 9  # two rows of five token ids
