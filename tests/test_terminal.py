"""Nothing a document, a file name or a model writes can drive the terminal (issue 9, item 8)."""

from __future__ import annotations

import itertools
import json
import re
from pathlib import Path

import pytest
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st

from ragkit.cli.main import _echo_stream, cli
from ragkit.cli.terminal import Sanitizer, clean, one_line

# What a terminal obeys: ESC, C1 controls (8-bit CSI, OSC, ...), other C0 controls, DEL, and
# the bidi embeddings, overrides and isolates.
FORBIDDEN = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")

CLEAR = "\x1b[2J\x1b[H"
TITLE = "\x1b]0;owned\x07"
HOSTILE = (f"Backups {CLEAR}run {TITLE}nightly \x1b[1;31mat 02:00\x1b[0m."
           " \x9b2J\x9d0;t\x9c\x1bPq#0;2;0;0;0\x1b\\\x1b7\x1b(B\rLine\x08\x07 \u202egnp.exe\n")


def test_escape_sequences_and_controls_are_removed_and_the_text_kept():
    assert clean(HOSTILE) == "Backups run nightly at 02:00. Line gnp.exe\n"
    assert clean("熊猫\t吃竹子 — ok\u200e [1]\n") == "熊猫\t吃竹子 — ok\u200e [1]\n"


def test_an_unterminated_string_sequence_ends_at_the_line():
    assert clean("a\x1b]0;title without end\nthe answer") == "a\nthe answer"
    assert clean("b\x1b[31") == "b" and clean("c\x1b") == "c"


def test_names_are_escaped_on_one_line():
    assert one_line("ev\x1b[2Jil\n[2] x\u202e.md") == "ev\\x1b[2Jil\\n[2] x\\u202e.md"
    assert one_line("熊猫 notes.md") == "熊猫 notes.md"


CONTROLS = st.characters(codec="utf-8", categories=["Cc", "Cf"])
TEXTS = st.text(st.sampled_from(["\x1b", "[", "]", "\\", "\x07", "\x9b", "\x9c", "\x9d", ";",
                                 "0", "2", "J", "m", "P", "\n", "a", "é", "\u202e"]) | CONTROLS
                | st.characters(codec="utf-8"), max_size=40)


@settings(max_examples=300, deadline=None)
@given(TEXTS, st.lists(st.integers(0, 40), max_size=6))
def test_a_stream_split_anywhere_prints_the_same_safe_text(text, cuts):
    """An escape sequence split across streamed deltas is removed all the same."""
    bounds = sorted({0, len(text), *(c % (len(text) + 1) for c in cuts)})
    sanitizer = Sanitizer()
    streamed = "".join(sanitizer.feed(text[a:b]) for a, b in itertools.pairwise(bounds))
    assert streamed == clean(text)
    assert not FORBIDDEN.search(streamed)


def test_the_streamed_answer_is_sanitized_across_deltas(capsys):
    _echo_stream(["Backups \x1b[", "2J\x1b]0;ow", "ned\x07run \x1b", "[31mnightly\x1b[0", "m."])
    assert capsys.readouterr().out == "Backups run nightly."


# -- the CLI's printing edge --------------------------------------------------------


@pytest.fixture
def run(env):
    runner = CliRunner()
    return lambda *args: runner.invoke(cli, list(args), catch_exceptions=False)


@pytest.fixture
def hostile(tmp_path: Path) -> Path:
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / f"ops{CLEAR}{TITLE}.md").write_text(f"# Ops {TITLE}\n\n{HOSTILE}", encoding="utf-8")
    (docs / "garden.md").write_text("Tomatoes need full sun.\n", encoding="utf-8")
    (docs / f"blob{TITLE}.bin").write_bytes(b"\x00\x01 not text \x00" * 20)
    return docs


def test_ingest_search_and_ask_print_no_control_sequence(run, hostile):
    ingest = run("ingest", str(hostile))
    assert "skipped " in ingest.stderr and "blob\\x1b]0;owned\\x07.bin" in ingest.stderr
    search = run("search", "When do backups run?", "-k", "1")
    ask = run("ask", "When do backups run?")
    for result in (ingest, search, ask):
        assert result.exit_code == 0, result.output
        assert not FORBIDDEN.search(result.stdout + result.stderr), result.output
    assert "ops\\x1b[2J\\x1b[H\\x1b]0;owned\\x07.md — Ops \\x1b]0;owned\\x07" in search.stdout
    assert "Backups run nightly at 02:00. Line gnp.exe" in search.stdout
    assert "Backups run nightly at 02:00." in ask.stdout
    assert re.search(r"\[1\] \S*ops\\x1b\[2J", ask.stdout.split("Sources:")[1])


def test_json_output_stays_exact(run, hostile):
    run("ingest", str(hostile))
    data = json.loads(run("search", "When do backups run?", "-k", "1", "--json").stdout)
    assert HOSTILE.split("\r")[0] in data["hits"][0]["text"]  # the reader reads CR as a newline
    assert data["hits"][0]["source"].endswith(f"ops{CLEAR}{TITLE}.md")
    answer = json.loads(run("ask", "When do backups run?", "--json").stdout)
    assert CLEAR in answer["answer"]


def test_indexes_list_and_doctor_print_no_control_sequence(run, hostile, env):
    # ragkit refuses such a name for a new index; an older ragkit made it, or a user renamed it.
    run("ingest", str(hostile), "--index", "x")
    (env / "x").rename(env / f"x{CLEAR}")
    manifest = env / f"x{CLEAR}" / "manifest.json"
    data = json.loads(manifest.read_text(encoding="utf-8"))
    manifest.write_text(json.dumps({**data, "embed_model": f"all-minilm{TITLE}"}), "utf-8")
    listed = run("indexes", "list")
    doctor = run("doctor", "--index", f"x{CLEAR}")
    for result in (listed, doctor):
        assert not FORBIDDEN.search(result.stdout + result.stderr), result.output
    assert "x\\x1b[2J\\x1b[H\tall-minilm\\x1b]0;owned\\x07\t" in listed.stdout


def test_the_progress_line_escapes_the_current_file_name(monkeypatch):
    import io

    from ragkit.cli.progress import ProgressLine
    from ragkit.ingest.reports import IngestProgress

    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    monkeypatch.setenv("TERM", "xterm")
    screen = Terminal()
    with ProgressLine(screen, interval=0) as bar:
        bar(IngestProgress(1, 1, 3, 1.0, f"/d/evil{CLEAR}{TITLE}.md"))
    assert "evil\\x1b[2J" in screen.getvalue()
    assert not FORBIDDEN.search(screen.getvalue().replace("\r", ""))
