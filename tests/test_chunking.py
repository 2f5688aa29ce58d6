"""Chunking: the token estimate, boundaries on concrete text, and property tests."""

from __future__ import annotations

import itertools
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ragkit.chunking import Chunk, ChunkerSettings, approx_tokens, chunk_stream, chunk_text

GUIDE = """Intro line.

# Install

Run pip.

## From source

Clone the repo.

### Linux

Use make.

## From PyPI ##

pip install ragkit

# Usage

Ask questions.
"""


def pairs(spans: list[Chunk]) -> list[tuple[str, str]]:
    return [(s.heading, s.text) for s in spans]


def assert_invariants(text: str, spans: list[Chunk], chunker: ChunkerSettings) -> None:
    """The promises every chunking keeps, whatever the input."""
    covered = bytearray(len(text))
    previous = -1
    for span in spans:
        assert span.text == text[span.start : span.end]
        assert span.text and span.text == span.text.strip()
        assert approx_tokens(span.text) <= chunker.size
        assert span.start > previous
        previous = span.start
        covered[span.start : span.end] = b"\x01" * (span.end - span.start)
    lost = [i for i, c in enumerate(text) if not c.isspace() and not covered[i]]
    assert not lost, f"not in any chunk: {[text[i] for i in lost[:10]]}"


# --- settings and the token estimate -----------------------------------------------------


def test_settings_defaults_and_manifest_form() -> None:
    chunker = ChunkerSettings()
    assert (chunker.size, chunker.overlap, ChunkerSettings.unit) == (250, 38, "approx_tokens")
    assert chunker.as_dict() == {"size": 250, "overlap": 38, "unit": "approx_tokens"}
    assert ChunkerSettings(**{k: v for k, v in chunker.as_dict().items() if k != "unit"}) == chunker


@pytest.mark.parametrize(("size", "overlap"), [(0, 0), (-5, 0), (10, 10), (10, 11), (10, -1)])
def test_settings_are_validated(size: int, overlap: int) -> None:
    with pytest.raises(ValueError):
        ChunkerSettings(size=size, overlap=overlap)


@pytest.mark.parametrize(
    ("text", "tokens"),
    [
        ("", 0),
        (" \n\t ", 0),
        ("Hello, world!", 4),
        ("abcdef", 1),
        ("abcdefg", 2),  # 7 letters: one extra piece
        ("internationalization", 3),
        ("don't", 3),
        ("3.14", 3),
        ("熊猫吃竹子。", 6),
        ("ひらがなカタカナ", 8),
        ("한국어", 3),
        ("ragkit用中文", 4),
        ("Ｒａｇｋｉｔ", 1),  # full-width latin is still one word
    ],
)
def test_approx_tokens(text: str, tokens: int) -> None:
    assert approx_tokens(text) == tokens


# --- markdown structure ------------------------------------------------------------------


def test_heading_paths_and_sections() -> None:
    assert pairs(chunk_text(GUIDE, markdown=True)) == [
        ("", "Intro line."),
        ("Install", "# Install\n\nRun pip."),
        ("Install > From source", "## From source\n\nClone the repo."),
        ("Install > From source > Linux", "### Linux\n\nUse make."),
        ("Install > From PyPI", "## From PyPI ##\n\npip install ragkit"),
        ("Usage", "# Usage\n\nAsk questions."),
    ]


def test_plain_text_ignores_headings() -> None:
    [span] = chunk_text(GUIDE)
    assert (span.heading, span.text) == ("", GUIDE.strip())


def test_small_chunks_never_cross_a_section() -> None:
    body = " ".join(f"Sentence number {i} is here." for i in range(30))
    text = f"# A\n\n{body}\n\n## B\n\n{body}\n\n# C\n\n{body}\n"
    chunker = ChunkerSettings(size=40, overlap=10)
    spans = chunk_text(text, chunker, markdown=True)
    assert_invariants(text, spans, chunker)
    starts = [text.index("# A"), text.index("## B"), text.index("# C"), len(text)]
    for span in spans:
        section = max(i for i in range(3) if starts[i] <= span.start)
        assert span.end <= starts[section + 1]
        assert span.heading == ["A", "A > B", "C"][section]
    assert {s.start for s in spans} >= set(starts[:3])  # each heading opens a chunk


def test_heading_line_stays_with_the_start_of_a_big_section() -> None:
    text = "## Big\n\n" + " ".join(f"Fact {i} is true." for i in range(40))
    spans = chunk_text(text, ChunkerSettings(size=30, overlap=5), markdown=True)
    assert spans[0].text.startswith("## Big\n\nFact 0 is true. Fact 1")
    assert all(s.heading == "Big" for s in spans)


@pytest.mark.parametrize("fence", ["```", "~~~", "````"])
def test_hashes_inside_code_fences_are_not_headings(fence: str) -> None:
    text = f"# Build\n\n{fence}sh\n# not a heading\nmake all\n{fence}\n\nAfter the code.\n"
    assert pairs(chunk_text(text, markdown=True)) == [("Build", text.strip())]


def test_unclosed_fence_runs_to_the_end() -> None:
    text = "# Top\n\n```\n# comment\n\n## also code\n"
    assert [s.heading for s in chunk_text(text, markdown=True)] == ["Top"]


@pytest.mark.parametrize(
    ("line", "heading"),
    [
        ("# Title", "Title"),
        ("   ### Indented three", "Indented three"),
        ("## Closed ##", "Closed"),
        ("## C# is a language", "C# is a language"),
        ("#hashtag", ""),  # no space after the hashes: not a heading
        ("    # four spaces is code", ""),
        ("####### seven", ""),
    ],
)
def test_atx_heading_syntax(line: str, heading: str) -> None:
    spans = chunk_text(f"{line}\n\nbody\n", markdown=True)
    assert spans[-1].heading == heading


def test_empty_heading_keeps_the_parent_path() -> None:
    text = "# Guide\n\n##\n\nuntitled part\n"
    assert [s.heading for s in chunk_text(text, markdown=True)] == ["Guide", "Guide"]


# --- paragraphs, sentences, words --------------------------------------------------------


def test_small_paragraphs_are_packed_whole() -> None:
    text = "Alpha one two.\n\nBeta three four.\n\n\n  \nGamma five six.\n"
    assert [s.text for s in chunk_text(text)] == [text.strip()]


def test_a_paragraph_that_fits_is_never_split() -> None:
    first = " ".join(["Apples are red."] * 5)  # 20 tokens
    second = " ".join(["Pears are green."] * 3)  # 12 tokens
    spans = chunk_text(f"{first}\n\n{second}", ChunkerSettings(size=24, overlap=10))
    assert spans[0].text == first
    assert spans[1].text.endswith(second)
    assert approx_tokens(spans[1].text) <= 24  # the overlap left room for all of it


def test_long_paragraph_splits_at_sentence_ends() -> None:
    text = "First sentence here. Second one! Third one? Fourth."
    spans = chunk_text(text, ChunkerSettings(size=8, overlap=0))
    assert [s.text for s in spans] == ["First sentence here. Second one!", "Third one? Fourth."]


def test_chinese_sentences_split_without_spaces() -> None:
    text = "熊猫吃竹子。它们很可爱！你喜欢吗？我喜欢；好的"
    spans = chunk_text(text, ChunkerSettings(size=8, overlap=0))
    assert [s.text for s in spans] == ["熊猫吃竹子。", "它们很可爱！", "你喜欢吗？", "我喜欢；好的"]


def test_long_sentence_splits_at_spaces() -> None:
    words = [f"w{i}" for i in range(100)]
    text = " ".join(words)
    spans = chunk_text(text, ChunkerSettings(size=10, overlap=0))
    assert [s.text.split() for s in spans] == [words[i : i + 10] for i in range(0, 100, 10)]


def test_lines_come_before_words() -> None:
    text = "\n".join(f"key_{i} = {i}" for i in range(20))  # no sentence ends
    spans = chunk_text(text, ChunkerSettings(size=12, overlap=0))
    assert all(s.text.endswith(tuple("0123456789")) for s in spans)
    assert [line for s in spans for line in s.text.split("\n")] == text.split("\n")


def test_cjk_run_without_punctuation_splits_between_characters() -> None:
    text = "熊" * 95
    spans = chunk_text(text, ChunkerSettings(size=30, overlap=0))
    assert [len(s.text) for s in spans] == [30, 30, 30, 5]


def test_giant_word_is_sliced_within_the_size() -> None:
    text = "start " + "x" * 500 + " end"
    chunker = ChunkerSettings(size=10, overlap=3)
    spans = chunk_text(text, chunker)
    assert_invariants(text, spans, chunker)
    assert len(spans) > 5


# --- overlap -----------------------------------------------------------------------------


def test_overlap_is_whole_trailing_sentences() -> None:
    text = " ".join(f"Step {i} is done." for i in range(40))  # 5 tokens a sentence
    chunker = ChunkerSettings(size=40, overlap=10)
    spans = chunk_text(text, chunker)
    assert_invariants(text, spans, chunker)
    assert len(spans) > 3
    for before, after in itertools.pairwise(spans):
        shared = text[after.start : before.end]
        assert after.start < before.end
        assert approx_tokens(shared) == 10  # two whole sentences
        assert shared.startswith("Step") and shared.endswith(".")


def test_overlap_falls_back_to_trailing_words() -> None:
    text = " ".join(f"word{i}" for i in range(200))  # one endless sentence
    chunker = ChunkerSettings(size=20, overlap=5)
    spans = chunk_text(text, chunker)
    assert_invariants(text, spans, chunker)
    for before, after in itertools.pairwise(spans):
        shared = text[after.start : before.end]
        assert 1 <= approx_tokens(shared) <= 5
        assert text[after.start - 1] == " "  # starts at a word


def test_no_overlap_when_asked() -> None:
    text = " ".join(f"Step {i} is done." for i in range(40))
    spans = chunk_text(text, ChunkerSettings(size=40, overlap=0))
    assert all(a.end < b.start for a, b in itertools.pairwise(spans))


def test_overlap_stays_inside_a_section() -> None:
    text = "# A\n\n" + "Alpha beta gamma. " * 30 + "\n\n# B\n\nDelta."
    spans = chunk_text(text, ChunkerSettings(size=30, overlap=10), markdown=True)
    assert spans[-1] == Chunk("# B\n\nDelta.", text.index("# B"), len(text), "B")


# --- speed -------------------------------------------------------------------------------


def test_a_megabyte_of_mixed_text_is_chunked_whole() -> None:
    # Speed is measured in benchmarks/bench_ingest.py, not asserted here: a timed
    # unit test fails whenever another process shares the cores.
    rng = random.Random(7)
    vocabulary = ["the", "index", "chunk", "answer", "model", "question", "ragkit", "citation"]
    parts: list[str] = []
    while sum(map(len, parts)) < 1_000_000:
        sentence = " ".join(rng.choice(vocabulary) for _ in range(rng.randint(4, 30)))
        parts.append(sentence + rng.choice([". ", "! ", "? ", ".\n\n", "。", ".\n\n## Part\n\n"]))
    text = "".join(parts)
    spans = chunk_text(text, markdown=True)
    assert len(spans) > 1000
    assert spans[0].start == 0 and spans[-1].end == len(text.rstrip())
    assert all(a.start < b.start for a, b in itertools.pairwise(spans))


# --- properties --------------------------------------------------------------------------

WHITESPACE = [" ", "  ", "\n", "\n\n", "\n \n", "\t", "\r\n", "\u3000", "\xa0", "\x0b", "\u2028"]
PIECES = st.one_of(
    st.sampled_from(["Hello", "world", "a", "internationalization", "x" * 60, "ragkit", "3.14"]),
    st.sampled_from(["熊猫", "吃竹子", "ひらがな", "カタカナ", "한국어", "中文ragkit混合"]),
    st.sampled_from([".", "!", "?", "。", "！", "？", "；", ",", "(", ")", "—", "'", "#", "```"]),
    st.sampled_from(WHITESPACE),
    st.text(max_size=4),
)
TEXTS = st.lists(PIECES, max_size=120).map("".join)
CHUNKERS = st.integers(1, 60).flatmap(
    lambda size: st.builds(ChunkerSettings, st.just(size), st.integers(0, size - 1))
)


@settings(max_examples=300, deadline=None)
@given(text=TEXTS, chunker=CHUNKERS, markdown=st.booleans())
def test_invariants_on_any_text(text: str, chunker: ChunkerSettings, markdown: bool) -> None:
    assert_invariants(text, chunk_text(text, chunker, markdown=markdown), chunker)


WORDS = st.sampled_from(["alpha", "beta", "gamma", "熊猫", "竹子", "longerwordhere", "x"])
SENTENCES = st.builds(
    lambda words, end: " ".join(words) + end,
    st.lists(WORDS, min_size=1, max_size=12),
    st.sampled_from([".", "!", "?", "。", "；", "", ","]),
)
PARAGRAPHS = st.lists(SENTENCES, min_size=1, max_size=6).map(" ".join)
TITLE_WORDS = st.sampled_from(["Install", "Usage", "FAQ", "安装", "v2"])
TITLES = st.lists(TITLE_WORDS, min_size=1, max_size=3).map(" ".join)
CODE_LINES = st.sampled_from(["# comment", "## not a heading", "make all", ""])
CODE = st.lists(CODE_LINES, max_size=4).map(lambda lines: "```\n" + "\n".join(lines) + "\n```")
BLANKS = st.sampled_from(["\n\n", "\n \n", "\n\n\n", "\r\n\r\n", "\n\t\n"])


@st.composite
def markdown_docs(draw: st.DrawFn) -> tuple[str, list[tuple[int, str]]]:
    """A markdown document and its sections as (start offset, expected heading path)."""
    text = draw(st.sampled_from(["", " ", "\n"]))
    text += "".join(p + draw(BLANKS) for p in draw(st.lists(PARAGRAPHS, max_size=2)))
    sections: list[tuple[int, str]] = [(0, "")]
    path: list[tuple[int, str]] = []
    for _ in range(draw(st.integers(0, 6))):
        level, title = draw(st.integers(1, 6)), draw(TITLES)
        path = [(lvl, t) for lvl, t in path if lvl < level] + [(level, title)]
        sections.append((len(text), " > ".join(t for _, t in path)))
        text += "#" * level + " " + title + draw(st.sampled_from(["\n", "\n\n", " ##\n\n"]))
        for block in draw(st.lists(st.one_of(PARAGRAPHS, CODE), max_size=4)):
            text += block + draw(BLANKS)
    return text, sections


@settings(max_examples=200, deadline=None)
@given(doc=markdown_docs(), chunker=CHUNKERS)
def test_markdown_sections_are_respected(
    doc: tuple[str, list[tuple[int, str]]], chunker: ChunkerSettings
) -> None:
    text, sections = doc
    spans = chunk_text(text, chunker, markdown=True)
    assert_invariants(text, spans, chunker)
    bounds = [start for start, _ in sections[1:]] + [len(text)]
    for span in spans:
        index = max(i for i, (start, _) in enumerate(sections) if start <= span.start)
        assert span.end <= bounds[index], "a chunk crosses a heading"
        assert span.heading == sections[index][1]
    opened = {s.start for s in spans}
    assert all(start in opened for start, _ in sections[1:])  # a heading starts its section


# Long runs without spaces in many scripts: hard splits must land between whole characters
# (a combining mark or a ZWJ emoji sequence may be cut, but nothing may be lost or doubled).
MIXED = st.lists(
    st.one_of(
        st.sampled_from("熊猫吃竹子ひらがなカタカナ한국어漢字"),  # CJK, kana, hangul
        st.sampled_from("مرحبا بالعالم שלום"),  # right-to-left, with its own spaces
        st.sampled_from("éñüßøЖжΩπ"),  # Latin-1, Cyrillic, Greek letters
        st.sampled_from(["e\u0301", "\u200d", "\U0001f600", "\U0001f469\u200d\U0001f4bb"]),
        st.sampled_from("abcxyz0123456789.。！?"),
        st.characters(codec="utf-8"),  # anything else Unicode has
    ),
    min_size=1,
    max_size=400,
).map("".join)


@settings(max_examples=200, deadline=None)
@given(text=MIXED, chunker=CHUNKERS, markdown=st.booleans())
def test_invariants_on_long_mixed_script_runs(
    text: str, chunker: ChunkerSettings, markdown: bool
) -> None:
    spans = chunk_text(text, chunker, markdown=markdown)
    assert_invariants(text, spans, chunker)
    assert all(s.end > s.start for s in spans)


@settings(max_examples=200, deadline=None)
@given(text=TEXTS, chunker=CHUNKERS)
def test_neighbours_overlap_by_at_most_the_overlap_and_always_move_on(
    text: str, chunker: ChunkerSettings
) -> None:
    spans = chunk_text(text, chunker)
    for before, after in itertools.pairwise(spans):
        assert after.end > before.end, "a chunk adds nothing new"
        shared = text[after.start : before.end] if after.start < before.end else ""
        assert approx_tokens(shared) <= chunker.overlap
        if chunker.overlap == 0:
            assert after.start >= before.end


# --- windows: chunk_stream gives chunk_text's chunks ---------------------------------------

WINDOWED = (
    "# Guide\n\nIntro sentence one. Intro sentence two! 熊猫主要生活在中国四川的山区。它们每天吃"
    "大量的竹子；还有🐼表情。\n\n## Setup ##\n\n```\n# not a heading\n```\n\n"
    + "lorem ipsum dolor sit amet " * 40
    + "\n\n" + "熊猫吃竹子" * 30 + "\n\n"
    + "naïve café — «quoted» end!” next (line)\nsecond line\r\nthird line\n\n"
    + "x" * 150 + " tail.\n\n### Deep\n\nLast words here."
)


def pieces(text: str, size: int) -> list[str]:
    return [text[i : i + size] for i in range(0, len(text), size)]


@pytest.mark.parametrize("markdown", [False, True], ids=["text", "markdown"])
@pytest.mark.parametrize("window", [1, 7, 64, 500])
@pytest.mark.parametrize("chunker", [ChunkerSettings(12, 3), ChunkerSettings(40, 10),
                                     ChunkerSettings(5, 0)], ids=["12-3", "40-10", "5-0"])
def test_windowed_chunking_gives_the_whole_text_chunks(
    markdown: bool, window: int, chunker: ChunkerSettings
) -> None:
    whole = chunk_text(WINDOWED, chunker, markdown=markdown)
    windows = pieces(WINDOWED, window)
    assert len(windows) > 3
    assert list(chunk_stream(windows, chunker, markdown=markdown)) == whole
    # Offsets are global: every window edge lies inside or between chunks of the whole text.
    assert [s.text for s in whole] == [WINDOWED[s.start : s.end] for s in whole]


def test_windowed_chunking_of_one_endless_line_at_the_default_size() -> None:
    text = "熊猫 lorem ipsum dolor 🐼 sit amet, " * 3000  # no sentence end, no line break
    whole = chunk_text(text)
    assert len(whole) > 20
    assert list(chunk_stream(pieces(text, 4096))) == whole


def test_a_stretch_with_nowhere_to_stop_is_cut_at_max_carry() -> None:
    text = "# " + "title words " * 2000 + "\n\nBody text."  # a 24 kB heading line
    spans = list(chunk_stream(pieces(text, 1000), ChunkerSettings(20, 5), markdown=True,
                              max_carry=5000))
    assert_invariants(text, spans, ChunkerSettings(20, 5))
    assert spans[-1].text.endswith("Body text.")


SPLITS = st.lists(st.integers(1, 30), min_size=1, max_size=40)


@settings(max_examples=300, deadline=None)
@given(text=TEXTS, chunker=CHUNKERS, markdown=st.booleans(), sizes=SPLITS)
def test_windowed_chunking_equals_whole_text_chunking(
    text: str, chunker: ChunkerSettings, markdown: bool, sizes: list[int]
) -> None:
    windows, pos = [], 0
    for size in itertools.cycle(sizes):
        if pos >= len(text):
            break
        windows.append(text[pos : pos + size])
        pos += size
    assert list(chunk_stream(windows, chunker, markdown=markdown)) == chunk_text(
        text, chunker, markdown=markdown)
