"""Every bad input of the fine-tuning data gets one line naming the file, line and field."""

from __future__ import annotations

from pathlib import Path

import pytest

import genloom as gl
from genloom.chat import ChatTemplate
from genloom.cli import main
from genloom.tune.data import read_preferences, read_prompts, read_sft, split_by_key


@pytest.mark.parametrize(
    ("reader", "lines", "message"),
    [
        ("sft", ['{"prompt": "a", "response": "b"}', '{"prompt": "a", "response": '], r":2: not valid JSON"),
        ("sft", ['{"prompt": "a"}'], r":1: field 'response' must be a string \(missing\)"),
        ("sft", ['{"prompt": "a", "response": "  "}'], r":1: field 'response' is empty"),
        ("sft", ['{"prompt": "a", "response": 3}'], r":1: field 'response' must be a string \(a int\)"),
        ("sft", ['{"text": "a"}'], r":1: expected fields 'prompt' and 'response', or 'messages'"),
        (
            "sft",
            ['{"messages": [{"role": "user", "content": "hi"}]}'],
            r":1: field 'messages' must end with an assistant",
        ),
        ("sft", ['{"messages": [{"role": "bot", "content": "hi"}]}'], r":1: messages\[0\].role: expected one of"),
        ("sft", ['{"messages": [{"role": "assistant", "content": ""}]}'], r"messages\[0\].content: empty assistant"),
        ("sft", ["[1, 2]"], r":1: expected a JSON object, got list"),
        ("pairs", ['{"prompt": "p", "chosen": "x"}'], r":1: field 'rejected' must be a string \(missing\)"),
        (
            "pairs",
            ["", '{"prompt": "p", "chosen": "x", "rejected": "x"}'],
            r":2: 'chosen' and 'rejected' are identical",
        ),
        ("pairs", ['{"prompt": "p", "chosen": "", "rejected": "x"}'], r":1: field 'chosen' is empty"),
        ("prompts", ['{"prompt": ""}'], r":1: field 'prompt' is empty"),
        ("prompts", ["", "  "], r"no records"),
    ],
)
def test_bad_records_name_file_line_and_field(tmp_path: Path, reader: str, lines: list[str], message: str):
    path = tmp_path / "data.jsonl"
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(gl.UserError, match=message) as info:
        if reader == "sft":
            read_sft(path, ChatTemplate())
        elif reader == "pairs":
            read_preferences(path)
        else:
            read_prompts(path)
    assert str(path) in str(info.value) and "\n" not in str(info.value)


def test_cli_bad_data_exits_2_and_writes_nothing(tmp_path: Path, trained_run: Path, capsys: pytest.CaptureFixture[str]):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"prompt": "p", "chosen": "same", "rejected": "same"}\n')
    out = tmp_path / "out"
    assert main(["tune", "dpo", str(trained_run), "--data", str(bad), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("genloom: error:") and "identical" in err and "Traceback" not in err
    assert not out.exists()
    assert main(["tune", "sft", str(trained_run), "--data", str(tmp_path / "missing.jsonl"), "--out", str(out)]) == 2
    assert "no such file" in capsys.readouterr().err


def test_bad_config_field_is_named(tmp_path: Path, trained_run: Path, tune_data: dict[str, Path]):
    with pytest.raises(gl.UserError, match="beta must be positive"):
        gl.tune("dpo", trained_run, data=tune_data["pairs"], out=tmp_path / "o", sets=["beta=0"])
    with pytest.raises(gl.UserError, match="unknown config key 'betta'"):
        gl.tune("dpo", trained_run, data=tune_data["pairs"], out=tmp_path / "o", sets=["betta=1"])
    with pytest.raises(gl.UserError, match="ppo needs --reward"):
        gl.tune("ppo", trained_run, data=tune_data["pairs"], out=tmp_path / "o")
    with pytest.raises(gl.UserError, match="neither a run directory nor a named reward"):
        gl.tune("ppo", trained_run, data=tune_data["pairs"], out=tmp_path / "o", reward="kindness")
    assert not (tmp_path / "o").exists()


def test_split_is_stable_and_keeps_prompts_on_one_side():
    items = [f"p{i % 50}" for i in range(400)]
    train, val = split_by_key(items, items, 0.2)
    assert set(train).isdisjoint(val) and len(val) > 0
    assert split_by_key(items, items, 0.2) == (train, val)


def test_bundled_hh_rlhf_pairs_split_on_the_last_assistant_turn(tmp_path: Path):
    from genloom.tune.recipes import hh_rlhf_pairs, write_records

    pairs = hh_rlhf_pairs()
    assert 2300 <= len(pairs) <= 2354
    for p in pairs[:200]:
        assert p["prompt"].startswith("\n\nHuman:") and p["prompt"].endswith("\n\nAssistant:")
        assert "\n\nAssistant:" not in p["chosen"] and p["chosen"] != p["rejected"]
    assert len(read_preferences(write_records(tmp_path / "hh.jsonl", pairs))) == len(pairs)


def test_a_set_keeps_the_other_defaults_of_the_method():
    from genloom.tune.runner import method_config

    ppo = method_config("ppo", ["train.lr=1e-5", "lora.r=2"])
    assert ppo.train.lr == 1e-5 and ppo.train.min_lr == method_config("ppo").train.min_lr and ppo.train.max_iters == 50
    assert ppo.lora.r == 2 and ppo.lora.alpha == 16.0
    assert method_config("lora").use_lora and not method_config("sft").use_lora


def test_trl_formats_read_as_genloom_formats(tmp_path: Path):
    import json

    template = ChatTemplate()
    plain = tmp_path / "plain.jsonl"
    plain.write_text(json.dumps({"prompt": "say hi", "response": "hi"}) + "\n")
    trl = tmp_path / "trl.jsonl"
    trl.write_text(json.dumps({"prompt": "say hi", "completion": "hi"}) + "\n")
    conv = tmp_path / "conv.jsonl"
    conv.write_text(
        json.dumps(
            {"prompt": [{"role": "user", "content": "say hi"}], "completion": [{"role": "assistant", "content": "hi"}]}
        )
        + "\n"
    )
    assert read_sft(trl, template) == read_sft(plain, template) == read_sft(conv, template)
    pairs = tmp_path / "pairs.jsonl"
    pairs.write_text(json.dumps({"prompt": "p", "chosen": "good", "rejected": "bad"}) + "\n")
    conv_pairs = tmp_path / "conv_pairs.jsonl"
    conv_pairs.write_text(
        json.dumps(
            {
                "prompt": [{"role": "user", "content": "p"}],
                "chosen": [{"role": "assistant", "content": "good"}],
                "rejected": [{"role": "assistant", "content": "bad"}],
            }
        )
        + "\n"
    )
    assert read_preferences(conv_pairs) == read_preferences(pairs)
    assert read_prompts(conv_pairs) == ["p"]
    multi = tmp_path / "multi.jsonl"
    multi.write_text(
        json.dumps(
            {
                "prompt": [{"role": "system", "content": "s"}, {"role": "user", "content": "p"}],
                "chosen": "a",
                "rejected": "b",
            }
        )
        + "\n"
    )
    with pytest.raises(gl.UserError, match=r"multi.jsonl:1: prompt: expected one user message"):
        read_preferences(multi)
