"""End to end on the real embedded models: the shipped corpus, indexed and asked."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from ragkit.cli.main import cli

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
    result = run(demo, "ask", "What is the default Ollama server address?", "--answer", "generate")
    assert result.exit_code == 0, result.output
    assert "ragkit: using the embedded engine (llama.cpp)" in result.stderr
    notices = [ln for ln in result.stderr.splitlines() if "135M demo model" in ln]
    assert notices == ["ragkit: this answer comes from smollm2:135m, a 135M demo model, and may "
                       "be wrong — for real answers run Ollama with a larger model: `ollama pull "
                       "qwen2.5:7b`, then --model qwen2.5:7b"]
    answer, _, sources = result.stdout.partition("\n\nSources")
    assert "127.0.0.1:11434" in answer  # only the documents say so
    assert "\n\n" not in answer.strip()  # one paragraph, then it stops
    assert re.search(r"^\[\d\] .*backends\.md$", sources, re.M)


@pytest.mark.parametrize(("sentence", "supported"), [
    ("The default Ollama server address is http://127.0.0.1:11434.", True),
    ("ragkit talks to Ollama over its HTTP API.", True),
    ("The default Ollama server address is http://10.0.0.7:8080.", False),
    ("The upstream contact for Ollama is Michael Wood.", False),
])
def test_the_grounding_check_on_the_real_embedder(demo, sentence, supported):
    from ragkit import Index
    from ragkit.backends.embedded import EmbeddedBackend
    from ragkit.grounding import check_answer

    runner, _ = demo
    question = "What is the default Ollama server address?"
    with Index.open(Path(runner.env["RAGKIT_HOME"]) / "demo", backend="embedded") as index:
        hits = index.search(question, 4)
    engine = EmbeddedBackend()
    (check,) = check_answer(question, sentence, hits, lambda t: engine.embed("all-minilm", t))
    assert check.supported is supported, check


# Question -> (the excerpts, their file): what the default `ask` quotes on the real models.
EXCERPTS = {
    "How do I pass model options like temperature?":
        (["To pass model options like temperature, use `-o key=value`, once per option."],
         "asking-questions.md"),
    "How do I leave a chat session?": (["To leave a chat session, press Ctrl-D."],
                                       "asking-questions.md"),
    "What is the default Ollama server address?":
        (["The default Ollama server address is `http://127.0.0.1:11434`."], "backends.md"),
    "How do I rebuild an index from scratch?":
        (["To rebuild an index from scratch, run ingest with `--rebuild`, for example "
          "`ragkit ingest ~/notes --rebuild`."], "indexing.md"),
    "What should I do when ragkit cannot reach Ollama?":
        (["When ragkit cannot reach Ollama, start the server with `ollama serve`."],
         "troubleshooting.md"),
    # A PDF line that starts like "Key: value" ("faster: use ...") continues its sentence.
    "How can I make embedding faster with a fast server?":
        (["With a fast server, such as Ollama on a GPU, a larger batch makes embedding\n"
          "faster: use ingest --batch-size 256."], "handbook.pdf"),
    "What does exit status 5 mean?":
        (["Exit status 5 means that ingest finished, but some files could not be read."],
         "handbook.pdf"),
    "没有 Ollama 时用什么模型？": (["没有 Ollama 时，ragkit 会自动使用内置引擎。",
                                "这两个模型都包含在 PyPI 软件包中，运行时不需要下载。"],
                               "快速入门.md"),
}


@pytest.mark.parametrize("question", list(EXCERPTS))
def test_the_default_answer_quotes_the_right_sentences(demo, question):
    result = run(demo, "ask", question, "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    excerpts, source = EXCERPTS[question]
    assert data["answer_mode"] == "extractive" and data["model"] is None
    assert [u["text"] for u in data["units"]] == excerpts
    n = data["units"][0]["n"]
    assert {u["n"] for u in data["units"]} == {n} and data["cited"] == [n]
    quoted = "".join(f"\n> {' '.join(e.split())} [{n}]" for e in excerpts)
    assert data["answer"] == f"From the documents:{quoted}"
    assert data["sources"][n - 1]["source"].endswith(source)
    assert data["metrics"]["eval_count"] == 0  # the demo model was not asked
    assert "answering with excerpts, as smollm2:135m is only a 135M demo model" in result.stderr


def test_the_default_answer_in_the_terminal(demo):
    result = run(demo, "ask", "How do I leave a chat session?")
    assert result.exit_code == 0, result.output
    assert re.fullmatch(r"From the documents:\n> To leave a chat session, press Ctrl-D\. \[1\]\n"
                        r"\nSources:\n\[1\] .*asking-questions\.md\n", result.stdout)


def test_ask_json_reports_real_metrics(demo):
    data = json.loads(run(demo, "ask", "What does exit status 5 mean?", "--json",
                          "--answer", "generate").stdout)
    assert data["found"] and data["model"] == "smollm2:135m"
    assert data["answer_mode"] == "generated" and data["sentences"]
    assert all(set(s) >= {"text", "supported", "passage"} for s in data["sentences"])
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


OFF_TOPIC = "What is the boiling point of tungsten at sea level?"


@pytest.mark.parametrize("mode", ["hybrid", "vector", "keyword"])
def test_off_topic_questions_are_refused_at_the_calibrated_threshold(demo, mode):
    result = run(demo, "ask", OFF_TOPIC, "--retrieval", mode, "--json")
    assert result.exit_code == 6, result.output
    data = json.loads(result.stdout)
    assert (data["found"], data["answer"]) == (False, "The documents do not contain the answer.")
    assert data["metrics"]["eval_count"] == 0  # the model was never asked
    forced = json.loads(run(demo, "ask", OFF_TOPIC, "--retrieval", mode, "--force",
                            "--answer", "generate", "--json").stdout)
    assert forced["found"] and forced["metrics"]["eval_count"] > 0


@pytest.fixture(scope="module")
def real_ollama():
    """Ollama's wire protocol (the test server) serving the real all-minilm vectors."""
    from ollama_server import FakeOllama

    from ragkit.backends.embedded import EmbeddedBackend

    engine = EmbeddedBackend()
    with FakeOllama(models=["all-minilm:latest"],
                    embedder=lambda model, texts: engine.embed(model, texts).tolist()) as server:
        yield server


def hits_of(result) -> list[tuple[str, int, float]]:
    assert result.exit_code == 0, result.output
    return [(h["source"], h["start"], h["cosine"]) for h in json.loads(result.stdout)["hits"]]


def same_hits(a, b) -> bool:
    return [x[:2] for x in a] == [x[:2] for x in b] and all(
        abs(x[2] - y[2]) < 1e-4 for x, y in zip(a, b, strict=True))


def test_an_index_moves_between_backends_without_reindexing(demo, real_ollama, tmp_path):
    runner, corpus = demo
    query = ["search", "How do I rebuild an index?", "-k", "5", "--json"]
    on_engine = hits_of(run(demo, *query))
    # Built on the embedded engine, queried through Ollama's protocol: same hits.
    auto = runner.invoke(cli, [*query, "--index", "demo", "--backend", "auto",
                               "--host", real_ollama.url])
    assert same_hits(hits_of(auto), on_engine)
    assert auto.stderr.count("ragkit: using") == 1
    assert f"ragkit: using Ollama at {real_ollama.url}" in auto.stderr
    # Built through Ollama, queried on the embedded engine: the same again.
    built = runner.invoke(cli, ["ingest", str(corpus), "--index", "via-ollama",
                                "--backend", "ollama", "--host", real_ollama.url])
    assert built.exit_code == 0, built.output
    back = runner.invoke(cli, [*query, "--index", "via-ollama", "--backend", "embedded"])
    assert same_hits(hits_of(back), on_engine)


def test_auto_takes_each_model_from_whoever_has_it_and_says_so_once(demo, real_ollama):
    runner, _ = demo
    # The server has all-minilm but not smollm2:135m: embeddings go to Ollama,
    # the answer comes from the embedded engine.
    result = runner.invoke(cli, ["ask", "How do I pass model options like temperature?",
                                 "--index", "demo", "--backend", "auto", "--host",
                                 real_ollama.url])
    assert result.exit_code == 0, result.output
    lines = [ln for ln in result.stderr.splitlines() if ln.startswith("ragkit: using")]
    assert lines == [f"ragkit: using Ollama at {real_ollama.url}",
                     "ragkit: using the embedded engine (llama.cpp)"]
    assert "From the documents:\n> To pass model options like temperature, use `-o key=value`" \
        in result.stdout  # quoted: the demo model runs on the embedded engine
    embeds = real_ollama.bodies("/api/embed")
    assert embeds and all(b["model"] == "all-minilm" for b in embeds)
    assert not real_ollama.bodies("/api/chat")
    # No server at all: auto settles on the embedded engine for both.
    dead = runner.invoke(cli, ["search", "rebuild", "--index", "demo", "--backend", "auto"])
    assert dead.exit_code == 0
    assert dead.stderr.splitlines() == ["ragkit: using the embedded engine (llama.cpp)"]


LARGE_K = ["ask", "How do I rebuild an index?", "-k", "40", "--answer", "generate"]
LEFT_OUT = re.compile(r"(\d+) of 40 passages left out to fit num_ctx=2048 — "
                      r"raise it with -o num_ctx=(4096|8192)")


def test_a_large_k_is_fitted_to_the_context_of_the_real_model(demo):
    # Before: "the prompt is 4258 tokens, more than the model's context (num_ctx=2048)".
    result = run(demo, *LARGE_K, "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    sent, left_out = len(data["sources"]), len(data["left_out"])
    assert sent + left_out == 40 and sent >= 4 and left_out > 0
    assert LEFT_OUT.fullmatch(data["note"]) and data["note"].startswith(f"{left_out} of 40")
    assert data["found"] and data["metrics"]["prompt_eval_count"] <= 2048 - 120
    assert data["metrics"]["eval_count"] > 0


def test_ask_says_once_on_stderr_what_was_left_out(demo):
    result = run(demo, *LARGE_K)
    assert result.exit_code == 0, result.output
    notes = [ln for ln in result.stderr.splitlines() if "passages left out" in ln]
    assert len(notes) == 1 and LEFT_OUT.fullmatch(notes[0].removeprefix("ragkit: "))


STATUS_PAGE = """# The status page

The status page shows whether each of our services is up. It is published at
https://status.example.org and refreshes every minute.

## Access

You do not need a login to read the status page: anyone can open it, also from outside the
office network. Only operators sign in, with their company account, to post an incident.

## Subscribing

Click "Subscribe" to get an email when an incident is posted or resolved.
"""


def test_a_chat_follow_up_gets_its_own_answer_not_the_first_one_again(demo, tmp_path,
                                                                       monkeypatch):
    from ragkit.backends.embedded import EmbeddedBackend

    runner, corpus = demo
    docs = tmp_path / "docs"
    shutil.copytree(corpus, docs)
    (docs / "status-page.md").write_text(STATUS_PAGE, encoding="utf-8")
    assert runner.invoke(cli, ["ingest", str(docs), "--index", "status"]).exit_code == 0
    sent: list[list[dict]] = []
    real_chat = EmbeddedBackend.chat

    def recording_chat(self, model, messages, **kwargs):
        sent.append([dict(m) for m in messages])
        return real_chat(self, model, messages, **kwargs)

    monkeypatch.setattr(EmbeddedBackend, "chat", recording_chat)
    # The model writes: the fix is about what the 135M model is shown, not about excerpts.
    result = runner.invoke(cli, ["chat", "--index", "status", "--answer", "generate"],
                           input="Where is the status page?\nDo I need a login for it?\n")
    assert result.exit_code == 0, result.output
    # Shown its previous answer, the demo model repeated it word for word: the second turn
    # goes to the real engine without the first question and answer.
    assert len(sent) == 2
    assert [m["role"] for m in sent[1]] == ["system", "user"]
    assert "Do I need a login" in sent[1][1]["content"]
    assert "Where is the status page" not in sent[1][1]["content"]
    # Piped questions are echoed as "> question": two turns, two answers.
    turns = r"^> (?:Where is the status page\?|Do I need a login for it\?)$"
    _, first, second = (re.split(r"\n(?:Sources|Retrieved|Not found)", part)[0].strip()
                        for part in re.split(turns, result.stdout, flags=re.M))
    assert first and second and first != second
