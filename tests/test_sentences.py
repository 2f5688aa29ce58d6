"""The sentence splitter splits at real sentence ends only; answer units keep line structure."""

from __future__ import annotations

import pytest

from ragkit.sentences import split_sentences, text_units


@pytest.mark.parametrize(
    ("text", "sentences"),
    [
        # numbers and versions: a dot followed by a digit or letter is no end
        ("It costs 3.50 euros. Pi is 3.14159.", ["It costs 3.50 euros.", "Pi is 3.14159."]),
        ("Licensed under Apache-2.0 and GPL-2.0+. See the file.",
         ["Licensed under Apache-2.0 and GPL-2.0+.", "See the file."]),
        ("Upgrade to v1.2.3 now. It fixes 0.9.x bugs.",
         ["Upgrade to v1.2.3 now.", "It fixes 0.9.x bugs."]),
        ("Released in 2019. Then it grew.", ["Released in 2019.", "Then it grew."]),
        # abbreviations and initials
        ("Use a tool, e.g. grep. Dr. Smith agrees, i.e. yes.",
         ["Use a tool, e.g. grep.", "Dr. Smith agrees, i.e. yes."]),
        ("J. R. R. Tolkien wrote it. Mr. Baggins read it etc. and more.",
         ["J. R. R. Tolkien wrote it.", "Mr. Baggins read it etc. and more."]),
        ("It weighs approx. three kilos. Next.", ["It weighs approx. three kilos.", "Next."]),
        # URLs, e-mail addresses and paths
        ("See https://example.org/a/b.html?x=1.2#c. Or mail chet@po.cwru.edu. Done!",
         ["See https://example.org/a/b.html?x=1.2#c.", "Or mail chet@po.cwru.edu.", "Done!"]),
        ("Edit ~/.config/ragkit.toml first. Then run it.",
         ["Edit ~/.config/ragkit.toml first.", "Then run it."]),
        # question and exclamation marks, quotes, ellipses
        ('Is it "done?" He said "yes." Fine...', ['Is it "done?"', 'He said "yes."',
                                                  "Fine..."]),
        ("Wait... Really? Yes!", ["Wait...", "Really?", "Yes!"]),
        # CJK: 。！？ end a sentence without a space after them
        ("熊猫吃竹子。它们住在四川！真的吗？是的",
         ["熊猫吃竹子。", "它们住在四川！", "真的吗？", "是的"]),
        ("版本 2.0 已发布。请升级。", ["版本 2.0 已发布。", "请升级。"]),
        # citations written after the end stay with their sentence
        ("Backups run at 02:00. [1] They are kept for 30 days [2].",
         ["Backups run at 02:00. [1]", "They are kept for 30 days [2]."]),
        # hard-wrapped lines are one sentence
        ("This sentence is\nwrapped over lines. Next one.",
         ["This sentence is\nwrapped over lines.", "Next one."]),
    ],
)
def test_splits_at_real_sentence_ends_only(text, sentences):
    assert split_sentences(text) == sentences


def units(text):
    return [(text[u.start:u.end], u.kind) for u in text_units(text)]


def test_list_items_fields_and_table_rows_are_units_of_their_own():
    text = ("Files: *\nCopyright: 1989-2022 Free Software Foundation, Inc.\n"
            "License: GPL-3+\n This program is free software.\n\n"
            "The commands:\n- `ingest` builds an index.\n- `ask` answers. It cites.\n"
            "1. First step.\n2) Second step\n\n"
            "| code | meaning |\n|---|---|\n| 5 | some files failed |\n")
    assert units(text) == [
        ("Files: *", "field"),
        ("Copyright: 1989-2022 Free Software Foundation, Inc.", "field"),
        ("License: GPL-3+\n This program is free software.", "field"),
        ("The commands:", "sentence"),
        ("- `ingest` builds an index.", "item"),
        ("- `ask` answers. It cites.", "item"),
        ("1. First step.", "item"),
        ("2) Second step", "item"),
        ("| code | meaning |", "row"),
        ("| 5 | some files failed |", "row"),
    ]


def test_a_note_that_wraps_is_prose_not_a_field():
    text = "Note: this command deletes\nevery file. Be careful."
    assert units(text) == [("Note: this command deletes\nevery file.", "sentence"),
                           ("Be careful.", "sentence")]
    # A hard-wrapped line that happens to start like "Key: value" continues its sentence.
    pdf = "a larger batch makes embedding\nfaster: use 256. On a small CPU\n- keep it."
    assert units(pdf) == [("a larger batch makes embedding\nfaster: use 256.", "sentence"),
                          ("On a small CPU\n- keep it.", "sentence")]


def test_headings_are_marked_and_blocks_are_counted():
    text = "# Title\n\nFirst para. Still first.\n\nSecond para."
    got = text_units(text)
    assert [u.kind for u in got] == ["heading", "sentence", "sentence", "sentence"]
    assert [u.block for u in got] == [0, 1, 1, 2]
