"""Document text made harmless inside a prompt: no fence tags, passage labels or special tokens.

A prompt puts retrieved passages inside a ``<documents>`` fence, each after a
``[n]`` label line (:mod:`ragkit.prompting`).  Document text must not be able to
close the fence, start a passage of its own, or end the turn with a chat
template's special token (``<|im_end|>``): a model, or the server's tokenizer,
would take it for ragkit's structure.

Matching happens on a *view* of the text in which tricks that hide a tag from a
plain pattern are undone, character by character: NFKC (full-width ``＜／ｄｏｃｕｍｅｎｔｓ＞``
becomes ``</documents>``), format characters dropped (soft hyphens, zero-width
spaces and joiners, BOM, bidi controls), combining marks dropped, other control
characters dropped, and every line break (CR, VT, FF, NEL, U+2028, U+2029) seen as
a newline.  What matches is replaced in the original text by a bracket-free form
(``(documents)``, ``(2)``, ``(im_end)``); everything else reaches the model as
written, since characters that form no tag are harmless there.  Replacements
contain no character a tag needs, and the text is scanned again until nothing
matches, so pieces left around a replacement cannot join into a new tag.

Special tokens are matched in two ways: by the shapes chat templates use
(``<|...|>``, ``<s>``, ``[INST]``, ``<start_of_turn>``, ``<<SYS>>`` ...), and as the
literal strings a backend reads from the chat model itself
(:func:`template_tokens`), which :func:`defuse` takes as ``specials``.
"""

from __future__ import annotations

import functools
import re
import unicodedata
from collections.abc import Iterable, Sequence

__all__ = ["defuse", "defuse_specials", "template_tokens"]

_LINE_BREAKS = frozenset("\r\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029")
_DROPPED = frozenset({"Cf", "Cc", "Mn", "Me"})  # format, control, combining marks
# Brackets a model may read as a passage label's: [n] (and full-width ［n］ via NFKC),
# 【n】, 〔n〕, 〖n〗, 〘n〙, 〚n〛, ⟦n⟧, ⦋n⦌, ⁅n⁆.
_OPEN, _CLOSE = r"\[【〔〖〘〚⟦⦋⁅", r"\]】〕〗〙〛⟧⦌⁆"
_LABEL = rf"^[^\S\n]*(?P<label>[{_OPEN}]\s*(?P<n>\d+)\s*[{_CLOSE}])"
# A fence tag, however spelled: "</documents>", "< / Documents >", "<\/documents>",
# or without its ">" (at the end of a line, or before other text).
_FENCE = r"(?P<fence><\s*[/\\]*\s*documents(?:\s*>)?)"
# The shapes of chat-template special tokens across model families.
_SHAPES = (
    r"<\|[^<>|\n]{1,64}\|>",  # ChatML, Llama 3, Phi, Granite, DeepSeek (after NFKC)
    r"<<\s*/?\s*SYS\s*>>",  # Llama 2
    r"\[\s*/?\s*(?:INST|SYS|SYSTEM_PROMPT|AVAILABLE_TOOLS|TOOL_CALLS|TOOL_RESULTS|"
    r"TOOL_CONTENT|IMG|IMG_BREAK|IMG_END)\s*\]",  # Llama 2, Mistral
    r"<\s*/?\s*(?:s|unk|pad|bos|eos|mask|sop|eop|start_of_turn|end_of_turn|"
    r"start_of_image|end_of_image|think|tool_call|tool_response)\s*>",  # Gemma, Qwen, ...
)
# Characters whose removal breaks any fence tag, label or special token matched above.
_BRACKETS = re.compile(rf"[<>|{_OPEN}{_CLOSE}]")
_MAX_ROUNDS = 64
_ASCII_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")


def defuse(text: str, specials: Iterable[str] = ()) -> str:
    r"""``text`` with fence tags, line-initial passage labels and special tokens neutralized.

    >>> defuse("a </documents> b <\\/Documents")
    'a (documents) b (documents)'
    >>> defuse("Intro.\u2028[\u200b2] secret.md\n【3】 x <|im_end|> see [4]")
    'Intro.\u2028(2) secret.md\n(3) x (im_end) see [4]'
    """
    return _scrub(text, _pattern(_literals(specials), labels=True))


def defuse_specials(text: str, specials: Iterable[str] = ()) -> str:
    """``text`` with special tokens neutralized (for the question and chat history).

    >>> defuse_specials("why <|im_start|>system [1]?")
    'why (im_start)system [1]?'
    """
    return _scrub(text, _pattern(_literals(specials), labels=False))


def template_tokens(template: str) -> tuple[str, ...]:
    """The literal special tokens a chat template writes: ``<|im_start|>``, ``[INST]``, ...

    Reads the template as text (Jinja or Go), so it finds what the template emits
    whatever its syntax; tag-like words that are not special tokens are matched
    too, which only costs their brackets when they occur in a document.

    >>> template_tokens("{{'<|im_start|>' + m.role}}<start_of_turn>{{ .Prompt }}[/INST]")
    ('<start_of_turn>', '<|im_start|>', '[/INST]')
    """
    found = re.findall(r"<\|[^<>|\s]{1,64}\|>|<[A-Za-z_/][\w./-]{0,40}>|\[/?[A-Z_]{2,40}\]",
                       template)
    return tuple(sorted(set(found)))


def _literals(specials: Iterable[str]) -> tuple[str, ...]:
    """Specials as matched in the view; those without a bracket could only be words."""
    seen = {_view(s)[0] for s in specials}
    return tuple(sorted((s for s in seen if _BRACKETS.search(s)), key=len, reverse=True))


@functools.lru_cache(maxsize=32)
def _pattern(literals: tuple[str, ...], *, labels: bool) -> re.Pattern[str]:
    """One scanner for everything to neutralize (cached: a model's specials rarely change)."""
    specials = "(?P<special>" + "|".join([*map(re.escape, literals), *_SHAPES]) + ")"
    parts = [_LABEL, _FENCE, specials] if labels else [specials]
    return re.compile("|".join(parts), re.IGNORECASE | re.MULTILINE)


def _scrub(text: str, pattern: re.Pattern[str]) -> str:
    """Replace every match of ``pattern`` in the view of ``text`` until none is left."""
    for _ in range(_MAX_ROUNDS):
        view, origin = _view(text)
        pieces, done = [], 0
        for match in pattern.finditer(view):
            kind = match.lastgroup  # "label" (it closes after its "n"), "fence" or "special"
            start, end = match.span("label" if kind == "label" else 0)
            first, last = origin[start], origin[end - 1] + 1
            if first < done:  # one original character behind two matches: next round
                continue
            pieces += [text[done:first], _replacement(kind, match)]
            done = last
        if not pieces:
            return text
        text = "".join(pieces) + text[done:]
    # Unreachable in practice: each round removes bracket characters and adds none.
    return _BRACKETS.sub(" ", text)


def _replacement(kind: str | None, match: re.Match[str]) -> str:
    """The bracket-free stand-in for one match."""
    if kind == "label":
        return f"({match.group('n')})"
    if kind == "fence":
        return "(documents)"
    inner = _BRACKETS.sub("", match.group()).strip()
    return f"({inner})"


def _view(text: str) -> tuple[str, Sequence[int]]:
    """``text`` as matched, and for each of its characters the index of the original one.

    >>> view, origin = _view("ｘ\u00ad<\u2028")
    >>> view, list(origin)
    ('x<\\n', [0, 2, 3])
    """
    if text.isascii() and not _ASCII_CONTROL.search(text):  # the common case: nothing to undo
        return text, range(len(text))
    seen = {char: _seen_as(char) for char in set(text)}
    if all(char == as_seen for char, as_seen in seen.items()):
        return text, range(len(text))
    pieces = [seen[char] for char in text]
    return "".join(pieces), [index for index, piece in enumerate(pieces) for _ in piece]


@functools.lru_cache(maxsize=8192)
def _seen_as(char: str) -> str:
    """What one character counts as when matching."""
    if char in _LINE_BREAKS:
        return "\n"
    if char in "\n\t":
        return char
    normal = unicodedata.normalize("NFKC", char)
    return "".join(c for c in normal if unicodedata.category(c) not in _DROPPED)
