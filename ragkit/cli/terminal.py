r"""Text made safe to print on a terminal: no escape sequences, no control characters.

Document text, file names and a model's answer can hold bytes a terminal
obeys: ``ESC[2J`` clears the screen, ``ESC]0;...BEL`` sets the window title,
colours and cursor moves can hide or fake lines.  Everything ragkit prints as
text goes through :class:`Sanitizer` (or :func:`clean` for whole strings), at
the CLI's printing edge, whether or not the output is a terminal: a piped
transcript may be shown on one later.  ``--json`` output is left exact: JSON
escapes every C0 control character already.

Names (file names, index names, a passage's location) go through
:func:`one_line` instead: they are shown on one line with every control or
invisible character escaped (``\x1b``, ``\n``, ``\u202e``), so that the user
can still tell which file is meant.

What :func:`clean` removes:

* escape sequences, whole: CSI (``ESC [`` ... final byte), OSC, DCS, SOS, PM
  and APC strings (up to BEL, ST or the end of the line), and two-character
  ``ESC x`` sequences; also their 8-bit C1 forms (U+009B, U+009D, ...);
* every other C0 and C1 control character and DEL, except newline and tab
  (a carriage return could overwrite a line, a backspace erase one);
* bidirectional embeddings, overrides and isolates (U+202A-U+202E,
  U+2066-U+2069), which can make text display in another order than it reads
  ("Trojan Source").  Marks (U+200E, U+200F) stay: they reorder nothing.

A sequence split across two streamed deltas is recognised all the same: the
sanitizer keeps its state between :meth:`Sanitizer.feed` calls.
"""

from __future__ import annotations

__all__ = ["Sanitizer", "clean", "one_line"]

_ESC, _BEL = "\x1b", "\x07"
_KEEP = frozenset("\n\t")
_BIDI = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")
# ESC followed by one of these opens a control string, ended by ST (ESC \) or BEL:
# DCS (P), SOS (X), OSC (]), PM (^), APC (_).
_STRING_OPENERS = frozenset("PX]^_")
# Their one-character C1 forms, and C1's CSI and ST.
_C1_STRING = frozenset("\x90\x98\x9d\x9e\x9f")
_C1_CSI, _C1_ST = "\x9b", "\x9c"

# States of the scanner.
_TEXT, _AFTER_ESC, _CSI, _STRING, _STRING_ESC = range(5)


class Sanitizer:
    r"""Removes terminal control sequences from text fed in pieces (a streamed answer).

    >>> s = Sanitizer()
    >>> s.feed("Hello \x1b[2"), s.feed("J\x1b[31mworld\x1b"), s.feed("[0m!\n")
    ('Hello ', 'world', '!\n')
    """

    def __init__(self) -> None:
        self._state = _TEXT

    def feed(self, text: str) -> str:
        """The printable part of ``text``, given everything fed before it."""
        out: list[str] = []
        for char in text:
            if self._state == _TEXT:
                self._text(char, out)
            elif self._state == _AFTER_ESC:
                self._after_esc(char, out)
            elif self._state == _CSI:
                self._csi(char, out)
            else:
                self._string(char, out)
        return "".join(out)

    def _text(self, char: str, out: list[str]) -> None:
        if char == _ESC:
            self._state = _AFTER_ESC
        elif char == _C1_CSI:
            self._state = _CSI
        elif char in _C1_STRING:
            self._state = _STRING
        elif _printable(char):
            out.append(char)

    def _after_esc(self, char: str, out: list[str]) -> None:
        if char == "[":
            self._state = _CSI
        elif char in _STRING_OPENERS:
            self._state = _STRING
        elif " " <= char <= "/":  # an intermediate byte (ESC ( B): the final one follows
            pass
        elif "0" <= char <= "~":  # a final byte (ESC 7, ESC c, ESC ( B): the sequence ends
            self._state = _TEXT
        else:  # not a sequence after all: the ESC is dropped, the character judged alone
            self._state = _TEXT
            self._text(char, out)

    def _csi(self, char: str, out: list[str]) -> None:
        if "@" <= char <= "~":  # the final byte ends it
            self._state = _TEXT
        elif not " " <= char <= "?":  # neither parameter nor intermediate: malformed, abandon
            self._state = _TEXT
            self._text(char, out)

    def _string(self, char: str, out: list[str]) -> None:
        # The string's content is dropped up to its terminator.  A newline ends it too:
        # since the opener never reaches the terminal, nothing there would swallow the
        # rest of an answer, and neither should ragkit.
        if char in (_BEL, _C1_ST):
            self._state = _TEXT
        elif char == "\n":
            self._state = _TEXT
            out.append(char)
        elif self._state == _STRING_ESC:
            self._state = _TEXT if char == "\\" else _STRING
        elif char == _ESC:
            self._state = _STRING_ESC


def _printable(char: str) -> bool:
    """Whether a character outside any sequence may be printed."""
    code = ord(char)
    if char in _KEEP:
        return True
    if code < 0x20 or 0x7F <= code <= 0x9F:
        return False
    return char not in _BIDI


def clean(text: str) -> str:
    r"""``text`` without terminal control sequences or control characters (newline and tab stay).

    >>> clean("\x1b]0;pwned\x07title \x1b[1;31mred\x1b[0m\r\x08 \u202egnp.exe\tok")
    'title red gnp.exe\tok'
    """
    return Sanitizer().feed(text)


def one_line(name: str) -> str:
    r"""A name on one line, with control and invisible characters shown escaped.

    >>> print(one_line("a\x1b[2J\nb\u202e.md"))
    a\x1b[2J\nb\u202e.md
    """
    if name.isprintable():
        return name
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in name)
