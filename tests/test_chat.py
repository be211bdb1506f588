"""Chat templates (genloom/chat.py) and `LanguageModel.chat` on base and templated runs."""

import json
import shutil

import pytest

import genloom as gl
from genloom.chat import CHAT_TEMPLATE, ChatTemplate, JinjaChatTemplate, RenderedChat, render_messages, stop_sequences
from genloom.errors import UserError

MESSAGES = [
    {"role": "system", "content": "Be brief."},
    {"role": "user", "content": "Who art thou?"},
    {"role": "assistant", "content": "A friend."},
    {"role": "user", "content": "Speak on."},
]


def test_plain_rendering_for_base_runs():
    text = render_messages(MESSAGES, None)
    assert text == "System: Be brief.\nUser: Who art thou?\nAssistant: A friend.\nUser: Speak on.\nAssistant:"
    assert render_messages(MESSAGES[:2], None, add_generation_prompt=False).endswith("Who art thou?\n")
    assert "\nUser:" in stop_sequences(None)


def test_template_rendering_and_round_trip(tmp_path):
    t = ChatTemplate()
    text = t.render(MESSAGES[:2])
    assert text == "<|system|>Be brief.<|end|>\n<|user|>Who art thou?<|end|>\n<|assistant|>"
    assert stop_sequences(t) == ("<|end|>",)
    custom = ChatTemplate(system="[S]", user="[U]", assistant="[A]", end="[E]")
    custom.save(tmp_path)
    assert ChatTemplate.load(tmp_path) == custom
    assert ChatTemplate.load(tmp_path / "elsewhere") is None


@pytest.mark.parametrize(
    ("messages", "fragment"),
    [
        ([], "messages: expected a non-empty list"),
        ("hello", "messages: expected a non-empty list"),
        ([{"role": "robot", "content": "x"}], "messages[0].role: expected one of system, user, assistant"),
        ([{"role": "user", "content": "a"}, {"role": "user"}], "messages[1].content: expected a string"),
        ([["user", "hi"]], "messages[0]: expected an object"),
    ],
)
def test_bad_messages_name_the_field(messages, fragment):
    with pytest.raises(gl.UserError, match=None) as e:
        render_messages(messages, None)
    assert fragment in str(e.value)


def test_bad_template_file(tmp_path):
    (tmp_path / CHAT_TEMPLATE).write_text('{"user": "[U]"}')
    with pytest.raises(gl.UserError, match=r"chat_template\.json: not a chat template"):
        ChatTemplate.load(tmp_path)


def test_chat_on_a_base_run_stops_at_the_next_role_line(trained_run):
    lm = gl.load(trained_run)
    assert lm.chat_template is None
    options = {"max_new_tokens": 40, "temperature": 0, "context_overflow": "truncate"}
    reply = lm.chat(MESSAGES, stop=["zzz"], **options)
    full = lm.generate(lm.chat_prompt(MESSAGES), **options)
    cut = min((full.index(s) for s in ("\nUser:", "\nSystem:", "zzz") if s in full), default=len(full))
    assert reply.text == full[:cut]
    assert "".join(lm.stream_chat(MESSAGES, **options)) == reply.text


def test_chat_uses_the_runs_template(tmp_path, trained_run):
    run = tmp_path / "templated"
    shutil.copytree(trained_run, run)
    ChatTemplate(system="S:", user="W:", assistant="A:", end="\n\n").save(run)
    lm = gl.load(run)
    assert lm.chat_prompt(MESSAGES[1:2]) == "W:Who art thou?\n\n\nA:"
    reply = lm.chat(MESSAGES[1:2], max_new_tokens=60, temperature=1.0, seed=1)
    full = lm.generate("W:Who art thou?\n\n\nA:", max_new_tokens=60, temperature=1.0, seed=1)
    assert reply.text == full.split("\n\n")[0]


# ---- pretrained checkpoints' Jinja templates ----------------------------------------------------------

JINJA = (
    "{{ bos_token }}{% for m in messages %}{% if m['role'] == 'system' and not loop.first %}"
    "{{ raise_exception('System message must come first') }}{% endif %}"
    "{% if m['role'] == 'user' %}[INST] {{ m['content'] | trim }} [/INST]{% elif m['role'] == 'system' %}"
    "<<SYS>>{{ m['content'] | tojson }}<</SYS>>{% else %}{{ m['content'] }}{{ eos_token }}{% endif %}"
    "{% if loop.index > 10 %}{% break %}{% endif %}{% endfor %}"
    "{% if add_generation_prompt %} ASSISTANT:{% endif %}"
)
TOKENS = {"bos_token": "<s>", "eos_token": "</s>"}


@pytest.mark.parametrize("add_generation_prompt", [True, False])
def test_jinja_template_renders_as_transformers(add_generation_prompt):
    from transformers.utils.chat_template_utils import render_jinja_template

    messages = [
        {"role": "system", "content": 'Be "brief" <b>é</b>'},
        {"role": "user", "content": "  hello  "},
        {"role": "assistant", "content": "hi"},
        {"role": "user", "content": "bye"},
    ]
    (theirs,), _ = render_jinja_template(
        conversations=[messages], chat_template=JINJA, add_generation_prompt=add_generation_prompt, **TOKENS
    )
    ours = JinjaChatTemplate(JINJA, "t.json", TOKENS).render(messages, add_generation_prompt)
    assert ours == theirs and isinstance(ours, RenderedChat)
    assert '"Be \\"brief\\" <b>é</b>"' in ours  # tojson: no HTML escaping, non-ASCII kept


def test_jinja_template_errors_are_one_line_naming_the_file():
    template = JinjaChatTemplate(JINJA, "/m/tokenizer_config.json", TOKENS)
    bad_order = [{"role": "user", "content": "a"}, {"role": "system", "content": "b"}]
    with pytest.raises(
        UserError,
        match=r"^/m/tokenizer_config\.json: the chat template refused these messages: System message must come first$",
    ):
        template.render(bad_order)
    escape = JinjaChatTemplate("{{ ''.__class__.__mro__[1].__subclasses__() }}", "/m/t.json")
    with pytest.raises(UserError, match=r"^/m/t\.json: the chat template tried to leave its sandbox"):
        escape.render([{"role": "user", "content": "a"}])
    mutate = JinjaChatTemplate("{% set x = messages.append(1) %}", "/m/t.json")  # immutable sandbox
    with pytest.raises(UserError, match=r"tried to leave its sandbox"):
        mutate.render([{"role": "user", "content": "a"}])
    with pytest.raises(UserError, match=r"^/m/t\.json: the chat template does not compile"):
        JinjaChatTemplate("{% for %}", "/m/t.json").render([{"role": "user", "content": "a"}])


def test_hf_directory_chats_with_its_shipped_template(tmp_path, trained_run):
    out = gl.export(trained_run, tmp_path / "hf")
    template = "{% for m in messages %}{{ m['role'] }}: {{ m['content'] }}\n{% endfor %}{% if add_generation_prompt %}assistant:{% endif %}"
    (out / "tokenizer_config.json").write_text(json.dumps({"chat_template": template}))
    lm = gl.load(out)
    assert isinstance(lm.chat_template, JinjaChatTemplate)
    messages = [{"role": "user", "content": "ROMEO"}]
    assert lm.chat_prompt(messages) == "user: ROMEO\nassistant:"
    reply = lm.chat(messages, max_new_tokens=5, temperature=0)
    (plain,) = lm.complete("user: ROMEO\nassistant:", max_new_tokens=5, temperature=0)
    assert reply.token_ids == plain.token_ids
