"""``ragkit eval`` on small BEIR folders, against the Ollama-protocol test server."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from ragkit.cli.main import cli
from ragkit.evaluate import BeirSet, document_file

DOCS = {
    "<dbpedia:Tungsten>": ("Tungsten", "Tungsten is a metal with the highest melting point."),
    "Panda (animal)": ("Giant panda", "The giant panda eats bamboo in the mountains of Sichuan."),
    "plain1": ("Espresso", "An espresso machine forces hot water through ground coffee."),
}
QUERIES = {
    "q1": "Which metal has the highest melting point?",
    "q2": "What does the giant panda eat?",
    "q3": "How does an espresso machine make coffee?",
}
QRELS = {"q1": "<dbpedia:Tungsten>", "q2": "Panda (animal)", "q3": "plain1"}


def write_beir(folder: Path, docs: dict[str, tuple[str, str]], qrels: dict[str, str]) -> Path:
    (folder / "qrels").mkdir(parents=True, exist_ok=True)
    with open(folder / "corpus.jsonl", "w", encoding="utf-8") as fh:
        for doc_id, (title, text) in docs.items():
            fh.write(json.dumps({"_id": doc_id, "title": title, "text": text}) + "\n")
    with open(folder / "queries.jsonl", "w", encoding="utf-8") as fh:
        for qid in qrels:
            fh.write(json.dumps({"_id": qid, "text": QUERIES[qid]}) + "\n")
    lines = ["query-id\tcorpus-id\tscore"] + [f"{q}\t{d}\t1" for q, d in qrels.items()]
    (folder / "qrels" / "test.tsv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return folder


def run_eval(folder: Path, *args: str) -> list[dict]:
    """``ragkit eval FOLDER --json ARGS``, on every query unless ARGS name a --split."""
    split = [] if "--split" in args else ["--split", "all"]
    result = CliRunner().invoke(cli, ["eval", str(folder), "--json", *split, *args],
                                catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_ids_that_are_not_file_names_are_scored(env, tmp_path):
    folder = write_beir(tmp_path / "odd", DOCS, QRELS)
    (row,) = run_eval(folder, "--retrieval", "keyword")
    assert (row["dataset"], row["mode"], row["queries"]) == ("odd", "keyword", 3)
    assert row["ndcg_at_10"] == row["mrr_at_10"] == row["recall_at_100"] == 1.0
    written = sorted(p.name for p in (env / ".eval-docs" / "odd").iterdir())
    assert written == sorted(document_file(d) for d in DOCS)


def test_a_changed_corpus_replaces_the_stale_documents(env, tmp_path):
    folder = write_beir(tmp_path / "set", DOCS, QRELS)
    run_eval(folder, "--retrieval", "keyword")
    # The tungsten document goes; the espresso one now talks about tea, in a text of
    # the same length (so a size check alone would keep the old file).
    docs = {k: v for k, v in DOCS.items() if k != "<dbpedia:Tungsten>"}
    tea = "Green tea is steeped in water that is not boiling."
    docs["plain1"] = ("Teatime!", tea.ljust(len(DOCS["plain1"][1]), "."))
    assert len(" ".join(docs["plain1"])) == len(" ".join(DOCS["plain1"]))
    write_beir(folder, docs, {"q2": "Panda (animal)", "q3": "plain1"})
    (row,) = run_eval(folder, "--retrieval", "keyword")
    # The panda question still finds its document; the espresso question finds nothing now.
    assert row["queries"] == 2 and row["recall_at_100"] == 0.5
    written = sorted(p.name for p in (env / ".eval-docs" / "set").iterdir())
    assert written == sorted(document_file(d) for d in docs)
    data = BeirSet.load(folder)
    texts = {p.name: p.read_text(encoding="utf-8") for p in (env / ".eval-docs" / "set").iterdir()}
    assert texts[document_file("plain1")] == data.corpus["plain1"]


def test_every_mode_side_by_side_with_latency(env, tmp_path):
    rows = run_eval(write_beir(tmp_path / "modes", DOCS, QRELS))
    assert [r["mode"] for r in rows] == ["vector", "keyword", "hybrid"]
    for row in rows:
        assert 0 < row["ndcg_at_10"] <= 1 and 0 <= row["p50_ms"] <= row["p95_ms"]


def test_a_folder_that_is_not_a_beir_set_is_one_line(env, tmp_path):
    (tmp_path / "empty").mkdir()
    result = CliRunner().invoke(cli, ["eval", str(tmp_path / "empty")])
    assert result.exit_code == 2
    assert result.stderr.strip() == (
        f"error: {tmp_path / 'empty' / 'corpus.jsonl'} not found — a BEIR set needs "
        "corpus.jsonl, queries.jsonl and qrels/test.tsv")


@pytest.mark.parametrize("bad", ["vector,fuzzy"])
def test_an_unknown_mode_is_refused(env, tmp_path, bad):
    result = CliRunner().invoke(cli, ["eval", str(write_beir(tmp_path / "m", DOCS, QRELS)),
                                      "--retrieval", bad])
    assert result.exit_code == 2
    assert "unknown retrieval mode 'fuzzy'" in result.stderr


@pytest.mark.parametrize(("content", "message"), [
    ('{"question": "Why?", "source": "a.md"}\nnot json\n', "{path}:2: not a JSON object"),
    ("\n\n", "{path} holds no questions"),
    ('{"question": "Why?"}\n', '{path}:1: each line needs "question" and "source"'),
])
def test_a_bad_questions_file_is_one_line(env, tmp_path, docs, content, message):
    assert CliRunner().invoke(cli, ["ingest", str(docs)]).exit_code == 0
    path = tmp_path / "questions.jsonl"
    path.write_text(content, encoding="utf-8")
    result = CliRunner().invoke(cli, ["eval", str(path)])
    assert result.exit_code == 2
    assert result.stderr.startswith("error: " + message.format(path=path))
    assert "Traceback" not in result.output


def test_eval_indexes_are_kept_out_of_the_index_list(env, tmp_path):
    run_eval(write_beir(tmp_path / "hidden", DOCS, QRELS), "--retrieval", "keyword")
    listed = CliRunner().invoke(cli, ["indexes", "list"], catch_exceptions=False)
    assert listed.stdout.startswith("no indexes in ")
    assert (env / ".eval-indexes" / "eval-hidden-all-minilm" / "manifest.json").exists()
    # A second run reuses it: nothing is embedded again.
    again = CliRunner().invoke(cli, ["eval", str(tmp_path / "hidden"), "--retrieval", "keyword"],
                               catch_exceptions=False)
    assert "0 added, 0 updated, 0 removed, 3 unchanged" in again.stderr
