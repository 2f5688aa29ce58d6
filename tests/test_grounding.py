"""Generated answers: grounding check, attribution, placeholders, not-found and empty answers.

A scripted model (real :class:`~ragkit.backend.Backend`, deterministic replies,
the test server's hashed embeddings) stands in for the chat model, so each
reply is exactly the case under test.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Sequence

import numpy as np
import pytest
from click.testing import CliRunner
from ollama_server import fake_embedding

from ragkit import Index
from ragkit.backends.base import Metrics, StreamChunk
from ragkit.backends.chooser import _FixedChooser
from ragkit.cli import cli
from ragkit.errors import ConnectError, EmptyAnswerError
from ragkit.grounding import (
    PlaceholderFilter,
    SentenceCheck,
    attribute,
    check_answer,
    strip_placeholders,
)
from ragkit.retrieval import Hit


class Scripted:
    """A chat model that streams a fixed reply, in the given deltas."""

    def __init__(self, *deltas: str, name: str = "scripted", reachable: bool = True) -> None:
        self.deltas = list(deltas)
        self.name = name
        self.reachable = reachable
        self.chats = 0

    def describe(self) -> str:
        return "a scripted model"

    def has_model(self, model: str) -> bool:
        if not self.reachable:
            raise ConnectError("http://127.0.0.1:9")
        return True

    def embed(self, model: str, texts: Sequence[str]) -> np.ndarray:
        return np.array([fake_embedding(t) for t in texts], dtype=np.float32)

    def chat(self, model: str, messages, **kwargs) -> Iterator[StreamChunk]:
        self.chats += 1
        for delta in self.deltas:
            yield StreamChunk(delta)
        yield StreamChunk(done=True, done_reason="stop", metrics=Metrics(eval_count=3))

    def generate(self, model: str, prompt: str, **kwargs) -> Iterator[StreamChunk]:
        return self.chat(model, [])


@pytest.fixture
def scripted(tmp_path, docs):
    """An index of the test docs whose chat model says whatever a test scripts."""
    backend = Scripted()
    index = Index.open(tmp_path / "ix", create=True, backend=backend)
    index.ingest([docs])
    yield index, backend
    index.close()


def ask(scripted, *deltas: str, question: str = "When do backups run?", **kwargs):
    index, backend = scripted
    backend.deltas = list(deltas)
    stream = index.ask_stream(question, min_score=0, answer="generate", **kwargs)
    shown = "".join(stream)
    return shown, stream.answer


def test_a_supported_answer_gets_ragkits_citation(scripted):
    _, answer = ask(scripted, "Backups run every night", " at 02:00.")
    assert answer.text == "Backups run every night at 02:00 [1]."
    assert answer.cited == [1] and answer.cited_by == "ragkit" and answer.found
    (check,) = answer.sentences
    assert check.supported and check.passage == 1 and answer.grounded is True


def test_an_unsupported_sentence_is_marked_and_never_attributed(scripted):
    _, answer = ask(scripted, "Backups run every night at 02:00. ",
                    "The upstream contact is Michael Wood.")
    assert answer.text == ("Backups run every night at 02:00 [1]. "
                           "The upstream contact is Michael Wood.")
    assert [c.supported for c in answer.sentences] == [True, False]
    assert [c.text for c in answer.unsupported] == ["The upstream contact is Michael Wood."]
    data = answer.as_dict()
    assert [s["supported"] for s in data["sentences"]] == [True, False]
    assert data["answer_mode"] == "generated" and data["grounded"] is True


def test_an_answer_with_no_supported_sentence_is_not_attributed(scripted):
    _, answer = ask(scripted, "The upstream contact for bash is Michael Wood.")
    assert answer.grounded is False and answer.found
    assert answer.cited == [] and answer.cited_by is None
    assert answer.text == "The upstream contact for bash is Michael Wood."


def test_a_number_no_passage_has_is_never_supported(scripted):
    _, answer = ask(scripted, "Backups run every night at 03:00. ",
                    "Backups run every night at 02:00.")
    assert [c.supported for c in answer.sentences] == [False, True]
    assert answer.sentences[0].new_numbers == ("03:00",)
    assert answer.as_dict()["sentences"][0]["new_numbers"] == ["03:00"]


def test_the_words_alone_decide_without_embeddings():
    hit = Hit(1, 1.0, 1, "/a", "a", None, "", "Backups run every night at 02:00.")
    checks = check_answer("When?", "Backups run at 02:00. Cats purr loudly.", [hit], None)
    assert [c.supported for c in checks] == [True, False]


@pytest.mark.parametrize("deltas", [
    ["The site is openssl.org [n]. Backups run every night at 02:00 [N]."],
    ["The site is openssl.org [", "n]. Backups run every night at 02:00 [", "N", "]."],
    ["The site is openssl.org ", "[n]", ". Backups run every night at 02:00 [N", "]", "."],
])
def test_no_placeholder_survives_in_the_stream_or_the_answer(scripted, deltas):
    shown, answer = ask(scripted, *deltas)
    assert shown == "The site is openssl.org. Backups run every night at 02:00."
    assert "[n]" not in answer.text and "[N]" not in answer.text
    assert answer.text.endswith("Backups run every night at 02:00 [1].")


def test_real_citations_pass_the_placeholder_filter():
    f = PlaceholderFilter()
    out = "".join(f.feed(d) for d in ["See [", "2] and [1", "0] or [n", "o] [n]"]) + f.flush()
    assert out == "See [2] and [10] or [no]"
    assert strip_placeholders("A [n], B [N].") == "A, B."


def test_inserted_markers_never_break_a_token():
    # Before: "defined in the Apache-2 [1].0 file." (the splitter broke on the version's dot)
    text = "It is defined in the Apache-2.0 file. Pi is 3.14 here. Mail chet@po.cwru.edu."
    hit = Hit(1, 1.0, 1, "/l", "l", None, "", "The licence is defined in the Apache-2.0 file, "
              "pi is 3.14 here, mail chet@po.cwru.edu today.")
    checks = check_answer("Where?", text, [hit], None)
    marked, _, cited = attribute(text, checks)
    assert marked == ("It is defined in the Apache-2.0 file [1]. Pi is 3.14 here [1]. "
                      "Mail chet@po.cwru.edu [1].")
    assert cited == [1]


def test_attribution_keeps_offsets_of_every_sentence():
    text = "中文句子。Second one."
    checks = [SentenceCheck("中文句子。", 0, 5, True, 2, 2.0),
              SentenceCheck("Second one.", 5, 16, False, None, 0.1)]
    marked, moved, cited = attribute(text, checks)
    assert marked == "中文句子 [2]。Second one." and cited == [2]
    assert [marked[c.start:c.end] for c in moved] == ["中文句子 [2]。", "Second one."]


def test_a_not_found_sentence_next_to_a_cited_answer_is_still_an_answer(scripted):
    # Before: any answer containing the sentence was "not found" (exit 6).
    _, answer = ask(scripted, "Backups run every night at 02:00 [1]. ",
                    "The documents do not contain the answer.")
    assert answer.found and answer.cited == [1] and answer.cited_by == "model"
    assert [c.not_found for c in answer.sentences] == [False, True]
    _, alone = ask(scripted, "The documents do not contain the answer.")
    assert not alone.found
    _, cited_alone = ask(scripted, "The documents do not contain the answer [1].")
    assert not cited_alone.found


@pytest.mark.parametrize("deltas", [[], ["  \n"], [" [n]"]])
def test_an_empty_answer_is_an_error(scripted, deltas):
    with pytest.raises(EmptyAnswerError, match="returned an empty answer"):
        ask(scripted, *deltas)


def test_auto_quotes_when_the_demo_model_runs_on_the_embedded_engine(tmp_path, docs):
    backend = Scripted("Never asked.", name="embedded")
    with Index.open(tmp_path / "ix", create=True, backend=backend) as index:
        index.ingest([docs])
        answer = index.ask("When do backups run?", min_score=0, model="smollm2:135m")
        other = index.ask("When do backups run?", min_score=0, model="qwen2.5:7b")
    assert backend.chats == 1  # only for qwen2.5:7b
    assert answer.answer_mode == "extractive" and answer.model is None
    assert answer.text == ("From the documents:\n> Backups run every night at 02:00 and are "
                           "kept for thirty days. [1]")
    assert answer.notice.startswith("answering with excerpts, as smollm2:135m is only a 135M "
                                    "demo model — for real answers run Ollama")
    assert other.answer_mode == "generated" and other.notice is None


def test_auto_quotes_when_no_chat_model_can_be_reached(tmp_path, docs):
    backend = Scripted("Never asked.", reachable=False)
    with Index.open(tmp_path / "ix", create=True, backend=backend) as index:
        index.ingest([docs])
        answer = index.ask("When do backups run?", min_score=0, model="qwen2.5:7b")
    assert backend.chats == 0 and answer.answer_mode == "extractive" and answer.found
    assert answer.notice == ("answering with excerpts: no chat model can be reached (cannot "
                             "reach Ollama at http://127.0.0.1:9 — is `ollama serve` running?)")


@pytest.fixture
def cli_with(monkeypatch, env, docs):
    """Run the CLI on the test docs with a scripted chat model."""
    backend = Scripted()
    monkeypatch.setattr("ragkit.index.chooser", lambda *a, **k: _FixedChooser(backend))
    runner = CliRunner()
    assert runner.invoke(cli, ["ingest", str(docs)]).exit_code == 0

    def run(*deltas: str, args: Sequence[str] = ()):
        backend.deltas = list(deltas)
        return runner.invoke(cli, ["ask", "When do backups run?", "--answer", "generate",
                                   *args], catch_exceptions=False)

    return run


def test_the_terminal_marks_unsupported_sentences(cli_with):
    result = cli_with("Backups run every night at 02:00. The contact is Michael Wood.")
    assert result.exit_code == 0
    head, sources = result.stdout.split(
        "Sources (matched by ragkit; the model cited none itself):\n")
    assert head == ("Backups run every night at 02:00. The contact is Michael Wood.\n\n"
                    "Not found in the sources (unverified):\n- The contact is Michael Wood.\n\n")
    assert re.fullmatch(r"\[1\] .*backups\.md\n", sources)
    assert result.stderr.count("a 135M demo model") == 1


def test_no_supported_sentence_is_said_instead_of_checked_sources(cli_with):
    result = cli_with("The contact is Michael Wood.")
    assert result.exit_code == 0
    lines = result.stdout.splitlines()
    assert lines[:3] == ["The contact is Michael Wood.", "",
                         "The model's answer could not be found in the sources. Retrieved:"]
    assert "Sources" not in result.stdout and "matched by ragkit" not in result.stdout
    assert re.fullmatch(r"\[1\] .*backups\.md", lines[3])


@pytest.mark.parametrize(("deltas", "code"), [
    (["Backups run every night at 02:00 [1]. The documents do not contain the answer."], 0),
    (["The documents do not contain the answer."], 6),
    ([" [n] "], 3),
])
def test_exit_statuses_of_answers(cli_with, deltas, code):
    result = cli_with(*deltas)
    assert result.exit_code == code, result.output
    if code == 3:
        assert result.stderr.strip().splitlines()[-1] == (
            "error: model 'smollm2:135m' returned an empty answer (done_reason: stop) — ask "
            "again, or answer with excerpts from the documents: --answer extractive")


def test_json_carries_each_sentence_and_its_verdict(cli_with):
    result = cli_with("Backups run every night at 02:00. The contact is Michael Wood.",
                      args=["--json"])
    data = json.loads(result.stdout)
    assert data["answer_mode"] == "generated" and data["units"] == []
    assert [(s["text"], s["supported"], s["passage"]) for s in data["sentences"]] == [
        ("Backups run every night at 02:00 [1].", True, 1),
        ("The contact is Michael Wood.", False, None)]
