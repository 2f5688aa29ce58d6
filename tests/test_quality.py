"""Retrieval quality on public data, so a regression in quality fails CI.

Runs ``ragkit eval --split test`` on XQuAD-en and XQuAD-zh (240 paragraphs each,
the test half of their questions) with the real embedded all-minilm.  The floors
sit a little under the figures measured by ``benchmarks/eval_targets.py`` (see the
README), which are also the issue's targets; SciFact's full run takes too long for the suite and
lives in that script.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from click.testing import CliRunner

from ragkit.cli.main import cli

pytestmark = pytest.mark.slow
pytest.importorskip("llama_cpp", reason="the embedded engine is installed by `make setup`")

SHARED = Path(os.environ.get("RAGKIT_SHARED") or Path(__file__).resolve().parents[2] / "shared")

# dataset -> mode -> lowest acceptable nDCG@10
FLOORS = {
    "xquad-en": {"vector": 0.94, "keyword": 0.955, "hybrid": 0.975},
    "xquad-zh": {"vector": 0.23, "keyword": 0.955, "hybrid": 0.96},
}


@pytest.mark.parametrize("name", sorted(FLOORS))
def test_eval_meets_the_floors_and_hybrid_beats_its_parts(tmp_path, name):
    folder = SHARED / "eval" / name
    assert folder.is_dir(), f"{folder} is missing: set RAGKIT_SHARED to the shared folder"
    env = {"RAGKIT_HOME": str(tmp_path), "RAGKIT_BACKEND": "embedded",
           "OLLAMA_HOST": "http://127.0.0.1:9"}
    result = CliRunner(env=env).invoke(
        cli, ["eval", str(folder), "--retrieval", "vector,keyword,hybrid", "--split", "test",
              "--json"],
        catch_exceptions=False)
    assert result.exit_code == 0, result.output
    scores = {row["mode"]: row["ndcg_at_10"] for row in json.loads(result.stdout)}
    for mode, floor in FLOORS[name].items():
        assert scores[mode] >= floor, (mode, scores)
    if name.endswith("-zh"):  # all-minilm does not read Chinese: hybrid ranks by keywords
        assert scores["hybrid"] >= scores["keyword"] > scores["vector"], scores
    else:
        assert scores["hybrid"] > max(scores["vector"], scores["keyword"]), scores
