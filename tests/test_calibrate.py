"""Dev/test halves and ``ragkit eval --calibrate``, end to end against the test server."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from ragkit.calibration import calibrate
from ragkit.cli.main import cli
from ragkit.evaluate import BeirSet, split_of
from ragkit.store.manifest import ManifestError, complete_manifest

# Twenty documents, each about one made-up topic with words of its own; each answerable
# question shares its document's words, each off-topic one shares none.
TOPICS = [f"zorblax{n} quendril{n} vamptor{n}" for n in range(20)]
ANSWERABLE = [f"What is zorblax{n} quendril{n}?" for n in range(20)]
OFF_TOPIC = [f"Where does plimkort{n} yendrafol{n} grow?" for n in range(20)]


@pytest.fixture
def corpus(tmp_path) -> Path:
    folder = tmp_path / "topics"
    folder.mkdir()
    for n, words in enumerate(TOPICS):
        (folder / f"t{n}.md").write_text(f"# Topic {n}\n\nThe {words} is described here.\n",
                                         encoding="utf-8")
    return folder


def _jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def test_the_halves_are_fixed_disjoint_and_about_even():
    ids = [f"q{n}" for n in range(2000)]
    dev = [q for q in ids if split_of(q) == "dev"]
    assert 900 < len(dev) < 1100
    assert [split_of(q) for q in ids] == [split_of(q) for q in reversed(ids)][::-1]
    assert split_of("q1", seed="another") != split_of("q1") or split_of(
        "q2", seed="another") != split_of("q2") or split_of("q3", "another") != split_of("q3")


def test_eval_split_picks_one_half_and_all_is_both(env, tmp_path):
    from test_evaluate import DOCS, QRELS, run_eval, write_beir

    folder = write_beir(tmp_path / "halves", DOCS, QRELS)
    counts = {s: run_eval(folder, "--retrieval", "keyword", "--split", s)[0]["queries"]
              for s in ("dev", "test", "all")}
    assert counts["dev"] + counts["test"] == counts["all"] == 3
    halves = BeirSet.load(folder)
    assert counts["test"] == sum(split_of(q) == "test" for q in halves.queries)
    result = CliRunner().invoke(cli, ["eval", str(folder), "--json", "--retrieval", "keyword"])
    (row,) = json.loads(result.stdout)
    assert (row["split"], row["queries"]) == ("test", counts["test"])  # the default


def test_the_threshold_refuses_at_most_five_percent():
    answerable = [0.2] + [0.6 + n / 100 for n in range(39)]
    found = calibrate(answerable, [0.1, 0.3, 0.61])
    assert found.threshold == 0.61 and found.answerable_refused == 2 / 40
    assert sum(a < found.threshold + 0.001 for a in answerable) / 40 > 0.05  # the highest
    assert found.off_topic_refused == pytest.approx(2 / 3)
    assert calibrate([0.3] * 10).answerable_refused == 0.0  # ties are never refused


def test_a_threshold_in_the_manifest_is_checked():
    fields = {"embed_model": "m", "dimension": 3}
    assert complete_manifest(fields)  # older indexes have none
    assert complete_manifest({**fields, "relevance_threshold": 0.42})["relevance_threshold"]
    with pytest.raises(ManifestError, match="relevance_threshold must be a number"):
        complete_manifest({**fields, "relevance_threshold": "high"})


def test_calibrate_a_questions_file_then_ask_refuses_off_topic(run, env, corpus, tmp_path,
                                                              monkeypatch):
    assert run("ingest", str(corpus)).exit_code == 0
    questions = _jsonl(tmp_path / "q.jsonl", [{"question": q, "source": f"t{n}.md"}
                                             for n, q in enumerate(ANSWERABLE)])
    off = tmp_path / "off.txt"
    off.write_text("\n".join(OFF_TOPIC) + "\n", encoding="utf-8")
    result = run("eval", str(questions), "--calibrate", "--off-topic", str(off),
                 "--store-threshold", "--json")
    assert result.exit_code == 0, result.output
    found = json.loads(result.stdout)
    assert found["stored"] and found["answerable"] == 20 and found["off_topic"] == 20
    assert found["answerable_refused"] <= 0.05 and found["off_topic_refused"] == 1.0
    manifest = json.loads((env / "default" / "manifest.json").read_text())
    assert manifest["relevance_threshold"] == found["threshold"] > 0
    # `ask` now uses the index's own threshold (the fixture's RAGKIT_MIN_SCORE=0 would not).
    monkeypatch.delenv("RAGKIT_MIN_SCORE")
    refused = run("ask", OFF_TOPIC[3], "--answer", "extractive")
    assert refused.exit_code == 6, refused.output
    answered = run("ask", f"What is the {TOPICS[3]}?", "--answer", "extractive")
    assert answered.exit_code == 0 and "zorblax3" in answered.stdout


def test_calibrate_a_beir_set_against_the_sets_beside_it(run, env, tmp_path):
    sets = tmp_path / "sets"
    mine, other = sets / "topics", sets / "elsewhere"
    for folder, questions in ((mine, ANSWERABLE), (other, OFF_TOPIC)):
        (folder / "qrels").mkdir(parents=True)
        _jsonl(folder / "corpus.jsonl", [{"_id": f"d{n}", "title": "", "text": f"The {t}."}
                                         for n, t in enumerate(TOPICS)])
        _jsonl(folder / "queries.jsonl", [{"_id": f"q{n}", "text": q}
                                          for n, q in enumerate(questions)])
        (folder / "qrels" / "test.tsv").write_text(
            "query-id\tcorpus-id\tscore\n" + "".join(f"q{n}\td{n}\t1\n" for n in range(20)))
    result = run("eval", str(mine), "--calibrate", "--split", "all")
    assert result.exit_code == 0, result.output
    assert "of 20 answerable questions and 100.0% of 20 off-topic ones" in result.stdout
    assert "not stored — run again with --store-threshold" in result.stderr


def test_calibrate_asks_before_storing(run, env, corpus, tmp_path, monkeypatch):
    import ragkit.cli.calibrating

    monkeypatch.setattr(ragkit.cli.calibrating, "_interactive", lambda: True)
    assert run("ingest", str(corpus)).exit_code == 0
    questions = _jsonl(tmp_path / "q.jsonl", [{"question": q, "source": f"t{n}.md"}
                                             for n, q in enumerate(ANSWERABLE)])
    declined = run("eval", str(questions), "--calibrate", input="n\n")
    assert declined.exit_code == 0 and "Store " in declined.output
    assert "relevance_threshold" not in (env / "default" / "manifest.json").read_text()
    accepted = run("eval", str(questions), "--calibrate", input="y\n")
    assert accepted.exit_code == 0 and "stored:" in accepted.stderr
    assert "relevance_threshold" in (env / "default" / "manifest.json").read_text()


def test_a_stored_threshold_yields_to_an_explicit_one(tmp_path, fake_backend, corpus):
    from ragkit import Index, models
    from ragkit.settings import Settings

    with Index.open("t", backend=fake_backend, create=True,
                    settings=Settings(home=tmp_path)) as index:
        index.ingest(corpus)
        assert index.relevance_threshold() == models.relevance_threshold("all-minilm")
        index.store_threshold(0.7)
        assert index.relevance_threshold() == 0.7 and index.relevance_threshold(0.2) == 0.2
    with Index.open("t", backend=fake_backend, settings=Settings(home=tmp_path)) as index:
        assert index.relevance_threshold() == 0.7  # kept in the manifest
        index.store_threshold(None)
        assert "relevance_threshold" not in index.manifest
    with Index.open("t", backend=fake_backend,
                    settings=Settings(home=tmp_path, min_score=0.3)) as index:
        assert index.relevance_threshold() == 0.3


@pytest.mark.parametrize(("args", "message"), [
    (["--store-threshold"], "--off-topic and --store-threshold go with --calibrate"),
    (["--calibrate", "--answers"], "--calibrate measures the index as it is"),
])
def test_calibrate_options_that_do_not_go_together_are_one_line(run, env, tmp_path, args,
                                                                message):
    questions = _jsonl(tmp_path / "q.jsonl", [{"question": "What?", "source": "a.md"}])
    result = run("eval", str(questions), *args)
    assert result.exit_code == 2 and message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
