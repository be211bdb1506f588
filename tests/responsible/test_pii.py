"""Personal-data scrubbing: each kind found only when its validator agrees, in every text ingestion path
(training corpora, JSONL, tuning data, document indexes), counted, and part of the corpus fingerprint."""

import json

import pytest

import genloom as gl
from genloom.api.responsible import corpus_stamp
from genloom.data.pii import KINDS, PLACEHOLDERS, Scrubber, parse_kinds, scrub
from genloom.data.text import TextDataConfig, load_corpus

from ..conftest import FAST

POSITIVES = {
    "email": ["jane.doe+news@example.co.uk", "m.müller@beispiel.de"],
    "phone": ["+1-780-563-6083x7783", "(591)341-7776", "+44(0)115 4960914", "+49 (0) 9141 777631", "0176 12345678"],
    "iban": ["DE89370400440532013000", "GB82 WEST 1234 5698 7654 32", "FR1420041010050500013M02606"],
    "card": ["4111 1111 1111 1111", "5500-0000-0000-0004", "378282246310005", "3714 496353 98431"],
    "ssn": ["123-45-6789", "078 05 1121"],
    "ip": ["192.168.0.1", "2001:db8::8a2e:370:7334", "::ffff:10.0.0.1"],
    "url": ["https://www.example.org/a/b?c=1", "www.example.com/path", "http://10.0.0.1:8080/x"],
}
NEGATIVES = [
    "4111 1111 1111 1112",  # Luhn fails
    "DE89370400440532013001",  # mod-97 fails
    "666-12-3456 and 000-12-3456 and 912-12-3456 and 123-00-4567 and 123-45-0000",  # SSA rules
    "999.1.1.1 and 1.2.3",  # not IPv4
    "2024-05-01, 01.05.2024, 12:30:45, $1,234.56, 3.14159, version 2.10.3",  # dates, times, amounts
    "ISBN 978-3-16-148410-0, postcode 700-3042, order #1234567",
    "a..b@example.com and name@localhost",  # not e-mail addresses
]


@pytest.mark.parametrize("kind", KINDS)
def test_each_kind_is_replaced_by_its_placeholder(kind):
    for item in POSITIVES[kind]:
        text = f"before {item}, after."
        assert scrub(text) == f"before {PLACEHOLDERS[kind]}, after.", item


@pytest.mark.parametrize("text", NEGATIVES)
def test_look_alikes_that_fail_their_validators_are_kept(text):
    assert scrub(text) == text


def test_only_the_named_kinds_are_scrubbed_and_counted():
    s = Scrubber(["email", "card"])
    out = s("mail a@example.com, card 4111111111111111, call +1-780-563-6083, mail b@example.org")
    assert out == "mail <EMAIL>, card <CARD>, call +1-780-563-6083, mail <EMAIL>"
    assert s.report() == {"email": 2, "card": 1}


def test_a_url_host_is_not_also_an_ip_and_an_email_is_not_a_url():
    assert scrub("see http://192.168.1.1/admin or write to a@www.example.com") == "see <URL> or write to <EMAIL>"


def test_unknown_kind_is_one_line_naming_the_valid_ones():
    with pytest.raises(
        ValueError, match=r"data.scrub_pii: unknown kind 'emial'; expected true, false or a list of: url, email"
    ):
        parse_kinds(["emial"])
    assert parse_kinds(True) == KINDS and parse_kinds(False) == () and parse_kinds("[email, ip]") == ("email", "ip")
    with pytest.raises(gl.UserError, match="scrub_pii: unknown kind 'emial'"):
        gl.resolve_config("gpt", sets=["data.scrub_pii=emial"])


def test_cli_refuses_an_unknown_kind_with_exit_2(tmp_path, small_text, capsys):
    from genloom.cli import main

    argv = ["train", "gpt", "--data", str(small_text), "--preset", "debug", "--out", str(tmp_path / "r")]
    assert main([*argv, "--set", "data.scrub_pii=email,passport"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "unknown kind 'passport'" in err
    assert not (tmp_path / "r").exists()


@pytest.fixture(scope="module")
def personal_corpus(tmp_path_factory, small_text):
    folder = tmp_path_factory.mktemp("pii")
    text = small_text.read_text()[:6000]
    lines = ["Write to romeo@verona.it or call +39 0925141776.", "Pay DE89370400440532013000 now."] * 20
    (folder / "plain.txt").write_text(text + "\n" + "\n".join(lines))
    records = [
        {"text": f"Record {i}: mail juliet{i}@capulet.org, ip 10.0.0.{i}. " + text[i * 100 : i * 100 + 300]}
        for i in range(30)
    ]
    (folder / "records.jsonl").write_text("\n".join(json.dumps(r) for r in records))
    return folder


def test_corpora_and_jsonl_are_scrubbed_before_splitting(personal_corpus):
    plain = load_corpus(TextDataConfig(source=str(personal_corpus / "plain.txt"), scrub_pii=True))
    joined = "".join(plain.train + plain.val)
    assert "@" not in joined and "<EMAIL>" in joined and "<PHONE>" in joined and "<IBAN>" in joined
    assert plain.stats["pii_scrubbed"] == {"url": 0, "email": 20, "iban": 20, "card": 0, "ssn": 0, "ip": 0, "phone": 20}
    records = load_corpus(TextDataConfig(source=str(personal_corpus / "records.jsonl"), scrub_pii=["email"]))
    joined = "".join(records.train + records.val)
    assert "capulet.org" not in joined and "10.0.0.1" in joined  # ip was not asked for
    assert records.stats["pii_scrubbed"] == {"email": 30}


def test_training_reports_counts_and_fingerprints_the_setting(tmp_path, personal_corpus):
    out = tmp_path / "run"
    source = str(personal_corpus / "plain.txt")
    gl.train("gpt", out=out, data=source, preset="debug", sets=[*FAST, "data.scrub_pii=true"])
    summary = json.loads((out / "summary.json").read_text())
    assert summary["data"]["pii_scrubbed"]["email"] == 20
    card = (out / "card.md").read_text()
    assert "## Personal data" in card and "| email | 20 |" in card
    vocab = json.loads((out / "tokenizer.json").read_text())["model"]["vocab"]
    assert "@" not in vocab  # the model never saw an e-mail address
    with pytest.raises(gl.UserError, match=r"data\.scrub_pii"):  # a change of setting is not a resume
        gl.train("gpt", out=out, data=source, resume=True, sets=["data.scrub_pii=false"])
    corpus = load_corpus(TextDataConfig(source=source))
    assert corpus_stamp(corpus.train, corpus.val, ()) != corpus_stamp(corpus.train, corpus.val, KINDS)


def test_tuning_data_and_document_indexes_are_scrubbed(tmp_path):
    from genloom.tune.data import read_preferences, read_sft

    sft = tmp_path / "sft.jsonl"
    sft.write_text(json.dumps({"messages": [
        {"role": "user", "content": "My card is 4111 1111 1111 1111"},
        {"role": "assistant", "content": "Noted; mail me at a@example.com"},
    ]}) + "\n")  # fmt: skip
    from genloom.chat import ChatTemplate

    (example,) = read_sft(sft, ChatTemplate(), Scrubber())
    assert "<CARD>" in "".join(example.segments) and "<EMAIL>" in "".join(example.segments)
    pairs = tmp_path / "pairs.jsonl"
    pairs.write_text(json.dumps({"prompt": "ip?", "chosen": "It is 8.8.8.8", "rejected": "No idea"}) + "\n")
    (pair,) = read_preferences(pairs, Scrubber(["ip"]))
    assert pair.chosen == "It is <IP>"

    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "a.md").write_text("# Contact\n\nReach Ada at ada@lovelace.org or +44 20 7946 0018.\n")
    index = gl.Index.build(docs, tmp_path / "index", config=gl.IndexConfig(scrub_pii=True))
    text = " ".join(c.text for c in index.chunks)
    assert "ada@lovelace.org" not in text and "<EMAIL>" in text and "<PHONE>" in text
    assert index.last_update.pii_scrubbed["email"] == 1
    assert gl.Index(tmp_path / "index").config.scrub_pii is True  # kept in the manifest
