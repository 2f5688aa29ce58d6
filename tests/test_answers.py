"""`ask --answer`, extractive answers, `eval --answers` and the answer exit statuses.

Through the CLI against the test server speaking Ollama's protocol; extractive
answers are checked exactly on the test documents (the real models are in
test_demo.py).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from ragkit import Index
from ragkit.errors import UsageError
from ragkit.extractive import Excerpt, extract, render
from ragkit.retrieval import Hit


@pytest.fixture
def indexed(run, docs):
    assert run("ingest", str(docs)).exit_code == 0
    return docs


def generations(ollama):
    return [r for r in ollama.requests if r[1] in ("/api/chat", "/api/generate")]


def test_extractive_answers_quote_the_passage_without_a_model(run, indexed, ollama):
    result = run("ask", "When do backups run?", "--answer", "extractive")
    assert result.exit_code == 0, result.output
    answer, sources = result.stdout.split("\n\nSources:\n")
    assert answer == ("From the documents:\n> Backups run every night at 02:00 and are kept "
                      "for thirty days. [1]")
    assert re.fullmatch(r"\[1\] .*backups\.md\n", sources)
    assert not generations(ollama)
    assert "demo model" not in result.stderr  # asked for excerpts: nothing to explain


def test_extractive_json_carries_the_mode_and_the_units(run, indexed):
    result = run("ask", "How long is the pump under warranty?", "--answer", "extractive",
                 "--json")
    data = json.loads(result.stdout)
    assert data["answer_mode"] == "extractive" and data["found"] and data["sentences"] == []
    (unit,) = data["units"]
    assert unit["text"] == ("The warranty covers the pump for two years from the date of "
                            "purchase.")
    assert data["sources"][unit["n"] - 1]["page"] == 2 and data["cited"] == [unit["n"]]
    assert unit["kind"] == "sentence" and unit["end"] - unit["start"] == len(unit["text"])


def test_the_relevance_gate_applies_to_extractive_answers(run, indexed, ollama):
    result = run("ask", "When do backups run?", "--answer", "extractive", "--min-score", "5")
    assert result.exit_code == 6
    assert result.stdout.startswith("The documents do not contain the answer.\n")
    data = json.loads(run("ask", "When do backups run?", "--answer", "extractive",
                          "--min-score", "5", "--json").stdout)
    assert data["answer_mode"] == "extractive" and data["units"] == [] and not data["found"]


def test_auto_lets_a_model_on_ollama_write_and_says_it_is_a_demo_model(run, indexed, ollama):
    result = run("ask", "When do backups run?")
    assert result.exit_code == 0 and len(generations(ollama)) == 1
    assert result.stdout.startswith("According to the documents, Backups run every night")
    notes = [ln for ln in result.stderr.splitlines() if "135M demo model" in ln]
    assert notes == ["ragkit: this answer comes from smollm2:135m, a 135M demo model, and may "
                     "be wrong — for real answers run Ollama with a larger model: `ollama pull "
                     "qwen2.5:7b`, then --model qwen2.5:7b"]
    other = run("ask", "When do backups run?", "--model", "qwen2.5:7b")  # not on the server
    assert other.exit_code == 3  # a running Ollama without the model still says so


def test_chat_takes_the_answer_mode_and_says_a_notice_once(run, indexed, ollama):
    quoted = run("chat", "--answer", "extractive",
                 input="When do backups run?\nHow long is the pump under warranty?\n")
    assert quoted.exit_code == 0 and not generations(ollama)
    assert quoted.stdout.count("From the documents:\n> ") == 2
    written = run("chat", input="When do backups run?\nAnd the monitoring?\n")
    assert written.exit_code == 0
    assert written.stderr.count("a 135M demo model") == 1


@pytest.mark.parametrize("value", ["nan", "inf", "-inf"])
def test_min_score_must_be_finite(run, indexed, value, monkeypatch):
    # Before: NaN compared false with every score, so nothing was ever refused.
    result = run("ask", "When do backups run?", "--min-score", value)
    assert result.exit_code == 2
    assert result.stderr.strip().splitlines()[-1] == (
        f"error: --min-score must be a finite number, got {float(value)} — e.g. 0.5")
    monkeypatch.setenv("RAGKIT_MIN_SCORE", value)
    assert run("ask", "When do backups run?").exit_code == 2


def test_an_empty_answer_exits_3_not_0(run, indexed):
    # Before: an empty answer printed nothing and exited 0.
    result = run("ask", "When do backups run?", "-o", "num_predict=0")
    assert result.exit_code == 3
    assert result.stderr.strip().splitlines()[-1] == (
        "error: model 'smollm2:135m' returned an empty answer (done_reason: length) — ask "
        "again, or answer with excerpts from the documents: --answer extractive")


def test_search_k_must_be_a_whole_number(env, docs):
    with Index.open("t", create=True, backend="ollama") as index:
        index.ingest([docs])
        for bad in (2.5, True, "3"):
            with pytest.raises(UsageError, match="-k must be a whole number between 1 and 1000"):
                index.search("backups", k=bad)  # type: ignore[arg-type]
        with pytest.raises(UsageError, match="unknown answer mode 'quote'"):
            index.ask("backups", answer="quote")
        assert len(index.search("backups", k=2)) == 2


def hit(n: int, text: str, heading: str = "") -> Hit:
    return Hit(n, 1.0, n, f"/d/{n}.md", f"{n}.md", None, heading, text)


def test_extract_adds_the_sentence_a_pronoun_leans_on_and_a_tables_header():
    passages = [
        hit(1, "The pump is made in Italy. It is covered for two years. Cats purr."),
        hit(2, "| part | warranty |\n|---|---|\n| valve | five years |\n"),
    ]
    got = extract("How long is the pump covered?", passages, None)
    assert (got[0].n, got[0].text) == (
        1, "The pump is made in Italy. It is covered for two years.")
    table = extract("What is the warranty of the valve?", passages[1:], None)
    assert [e.text for e in table] == ["| part | warranty |\n|---|---|\n| valve | five years |"]


def test_extract_keeps_reading_order_and_at_most_three_units():
    passages = [hit(1, "Alpha beta one. Alpha beta two. Alpha beta three. Alpha beta four.")]
    got = extract("alpha beta?", passages, None)
    assert len(got) == 1 and got[0].text == "Alpha beta one. Alpha beta two. Alpha beta three."
    assert render(got) == "From the documents:\n> " + got[0].text + " [1]"
    assert render([Excerpt(2, "a\n b", 0, 4, 1.0, "item")]) == "From the documents:\n> a b [2]"


def test_extract_quotes_a_line_once_when_two_files_hold_it():
    licence = "Files: *\nLicense: Apache-2.0\nUpstream-Contact: security@openssl.org\n"
    passages = [hit(1, licence), hit(2, licence), hit(3, "Source: https://www.openssl.org\n")]
    got = extract("Which license does OpenSSL use?", passages, None)
    said = [" ".join(e.text.split()) for e in got]
    assert len(said) == len(set(said))
    assert sum("License: Apache-2.0" in s for s in said) == 1


@pytest.fixture
def tiny_set(tmp_path):
    """A three-paragraph BEIR set with gold answers."""
    folder = tmp_path / "tiny"
    (folder / "qrels").mkdir(parents=True)
    docs = {"d1": "Backups run every night at 02:00. They are kept for thirty days.",
            "d2": "The pump is covered for two years. The valve is covered for five years.",
            "d3": "Pandas eat bamboo. They live in Sichuan."}
    queries = {"q1": ("When do backups run?", ["02:00"]),
               "q2": ("How long is the valve covered?", ["five years"]),
               "q3": ("What do pandas eat?", ["eucalyptus"]),  # wrong gold on purpose
               "q4": ("Where do pandas live?", ["Sichuan"])}
    (folder / "corpus.jsonl").write_text("".join(
        json.dumps({"_id": k, "title": "", "text": v}) + "\n" for k, v in docs.items()))
    (folder / "queries.jsonl").write_text("".join(
        json.dumps({"_id": k, "text": q}) + "\n" for k, (q, _) in queries.items()))
    (folder / "answers.jsonl").write_text("".join(
        json.dumps({"_id": k, "answers": a}) + "\n" for k, (_, a) in queries.items()))
    qrels = "query-id\tcorpus-id\tscore\n" + "".join(
        f"{q}\td{q[1] if q != 'q4' else 3}\t1\n" for q in queries)
    (folder / "qrels" / "test.tsv").write_text(qrels)
    return folder


def test_eval_answers_reports_the_share_that_contains_a_gold_span(run, tiny_set, tmp_path):
    details = tmp_path / "details.jsonl"
    result = run("eval", str(tiny_set), "--split", "all", "--answers", "--json",
                 "--details", str(details))
    assert result.exit_code == 0, result.output
    (row,) = json.loads(result.stdout)
    assert (row["dataset"], row["answer_mode"], row["questions"], row["of"]) == (
        "tiny", "extractive", 4, 4)
    assert row["contains_gold"] == 0.75 and row["answered"] == 1.0
    records = [json.loads(line) for line in details.read_text().splitlines()]
    assert [(r["_id"], r["contains_gold"]) for r in records] == [
        ("q1", True), ("q2", True), ("q3", False), ("q4", True)]
    assert records[1]["answer"]["units"][-1]["text"].endswith(
        "The valve is covered for five years.")


def test_eval_answers_samples_with_a_seed_and_can_ask_the_model(run, tiny_set, ollama, tmp_path):
    def sample(seed: str) -> tuple[int, list[str]]:
        out = tmp_path / f"{seed}.jsonl"
        (row,) = json.loads(run("eval", str(tiny_set), "--split=all", "--answers", "--limit", "2",
                                "--seed",
                                seed, "--details", str(out), "--json").stdout)
        return row["questions"], [json.loads(ln)["_id"] for ln in out.read_text().splitlines()]

    assert sample("0") == sample("0") and sample("0")[0] == 2
    assert {tuple(sample(str(seed))[1]) for seed in range(8)} != {tuple(sample("0")[1])}
    written = json.loads(run("eval", str(tiny_set), "--split=all", "--answers", "--answer",
                             "generate",
                             "--json").stdout)
    assert written[0]["answer_mode"] == "generate" and len(generations(ollama)) == 4
    # The test server quotes passage [1]'s first sentence: right for q1 only.
    assert written[0]["contains_gold"] == 0.25


def test_eval_answers_needs_gold_answers(run, tiny_set):
    (tiny_set / "answers.jsonl").unlink()
    result = run("eval", str(tiny_set), "--split", "all", "--answers")
    assert result.exit_code == 2
    assert result.stderr.strip().splitlines()[-1].startswith(
        f"error: {Path(tiny_set) / 'answers.jsonl'} not found — --answers needs the gold")
