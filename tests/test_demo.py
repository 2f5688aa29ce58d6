"""End to end on the real embedded models: the shipped corpus, indexed and asked."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from ragkit.cli import cli

pytestmark = pytest.mark.slow
pytest.importorskip("llama_cpp", reason="the embedded engine is installed by `make setup`")

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    """The guide corpus indexed once on the embedded engine."""
    home = tmp_path_factory.mktemp("home")
    corpus = home / "guide"
    shutil.copytree(ROOT / "corpora" / "guide", corpus)
    env = {"RAGKIT_HOME": str(home / "indexes"), "RAGKIT_BACKEND": "embedded",
           "OLLAMA_HOST": "http://127.0.0.1:9"}
    runner = CliRunner(env=env)
    result = runner.invoke(cli, ["ingest", str(corpus), "--index", "demo"])
    assert result.exit_code == 0, result.output
    assert re.search(r"7 added, .* 0 failed; \d+ chunks embedded", result.stdout)
    return runner, corpus


def run(demo, *args):
    runner, _ = demo
    return runner.invoke(cli, [*args, "--index", "demo"], catch_exceptions=False)


def test_ask_streams_a_grounded_answer_with_sources(demo):
    result = run(demo, "ask", "How do I pass model options like temperature?")
    assert result.exit_code == 0, result.output
    assert "ragkit: using the embedded engine (llama.cpp)" in result.stderr
    answer, _, sources = result.stdout.partition("\n\nSources")
    assert "`-o`" in answer  # only the documents say so
    assert "\n\n" not in answer.strip()  # one paragraph, then it stops
    assert re.search(r"^\[\d\] .*asking-questions\.md$", sources, re.M)


def test_ask_json_reports_real_metrics(demo):
    data = json.loads(run(demo, "ask", "What does exit status 5 mean?", "--json").stdout)
    assert data["found"] and data["model"] == "smollm2:135m"
    assert data["sources"][0]["source"].endswith("handbook.pdf") and data["sources"][0]["page"] == 2
    m = data["metrics"]
    assert 0 < m["eval_count"] <= 120 and m["prompt_eval_count"] > 50 and m["eval_duration"] > 0


@pytest.mark.parametrize("mode", ["hybrid", "vector", "keyword"])
def test_every_retrieval_mode_finds_the_expected_sources(demo, mode):
    result = run(demo, "eval", str(ROOT / "corpora" / "guide-questions.jsonl"), "--retrieval",
                 mode, "-k", "3", "--json")
    (row,) = json.loads(result.stdout)
    assert row["questions"] == 13
    assert row["hit_rate"] >= 0.9, row  # a regression in retrieval quality fails CI


def test_chinese_question_finds_the_chinese_guide(demo):
    hits = json.loads(run(demo, "search", "如何建立索引", "-k", "1", "--json").stdout)["hits"]
    assert hits[0]["source"].endswith("快速入门.md")
