"""Answers with citations: extractive ones quote their chunks exactly; generated ones are checked."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

import genloom as gl
from genloom.documents.answer import NOT_FOUND


@pytest.fixture
def index(docs: Path, tmp_path: Path) -> gl.Index:
    return gl.Index.build(docs, tmp_path / "index")


def test_extractive_answers_quote_their_chunks_and_every_marker_resolves(index: gl.Index) -> None:
    for question in ["How often are the API keys rotated?", "When is lunch served?", "How much is a hotel room?"]:
        answer = index.ask(question)
        assert answer.found and answer.mode == "extractive"
        numbers = [int(n) for n in re.findall(r"\[(\d+)\]", answer.text)]
        assert numbers and set(numbers) == {c.n for c in answer.citations}
        for citation in answer.citations:
            assert citation.quotes and all(q in citation.text for q in citation.quotes)
    keys = index.ask("How often are the API keys rotated?")
    assert "every 90 days" in keys.text and keys.citations[0].path == "guide.md"
    assert keys.citations[0].span == "lines 4-6"


def test_no_relevant_chunk_means_no_answer(index: gl.Index) -> None:
    answer = index.ask("What is the boiling point of mercury on Jupiter?")
    assert not answer.found and answer.text == NOT_FOUND and answer.citations == []


def test_generated_sentences_are_checked_against_what_they_cite(index: gl.Index) -> None:
    seen: list[list[dict[str, str]]] = []

    def model(messages: list[dict[str, str]]) -> str:
        seen.append(messages)
        return (
            "The API keys are rotated every 90 days [1]. "
            "The moon is made of green cheese [1]. "
            "Old keys stop working one hour after a rotation [9]."
        )

    answer = index.ask("How often are the API keys rotated?", model=model, k=2)
    assert "[1] (guide.md, lines 4-6)" in seen[0][1]["content"]  # the sources are numbered for the model
    assert [s.supported for s in answer.sentences] == [True, False, False]
    assert "does not exist" in answer.sentences[2].reason
    assert "[9]" not in answer.text  # a marker that resolves to nothing is never shown
    strict = index.ask("How often are the API keys rotated?", model=model, k=2, strict=True)
    assert strict.text == "The API keys are rotated every 90 days [1]." and len(strict.removed) == 2


def test_the_generator_is_not_asked_when_nothing_is_relevant(index: gl.Index) -> None:
    def model(messages: list[dict[str, str]]) -> str:
        raise AssertionError("the model must not be asked")

    answer = index.ask("What is the boiling point of mercury on Jupiter?", model=model)
    assert not answer.found and answer.text == NOT_FOUND
