"""The one definition of CJK script, shared by chunking, keywords, decoding and retrieval.

"CJK" here means the letters of scripts written without spaces between words,
where one character is about one token: hangul jamo and syllables, kana, and
CJK ideographs (with their extensions and compatibility forms).
"""

from __future__ import annotations

import re

__all__ = ["CJK_CHAR", "CJK_PUNCTUATION", "CJK_RANGES", "CJK_TEXT_CHAR", "is_cjk"]

#: The CJK letters as a regex character-class body (no brackets), to embed in bigger patterns.
CJK_RANGES = (
    "\u1100-\u11ff"  # hangul jamo
    "\u3040-\u30ff"  # hiragana, katakana
    "\u3130-\u318f"  # hangul compatibility jamo
    "\u3400-\u4dbf"  # CJK extension A
    "\u4e00-\u9fff"  # CJK unified ideographs
    "\uac00-\ud7af"  # hangul syllables
    "\uf900-\ufaff"  # CJK compatibility ideographs
    "\U00020000-\U0002fa1f"  # CJK extensions B-F, compatibility supplement
)
#: CJK symbols and punctuation, and full-width forms: not letters, but written with them.
CJK_PUNCTUATION = "\u3000-\u303f\uff00-\uffef"

#: One CJK letter.
CJK_CHAR = re.compile(f"[{CJK_RANGES}]")
#: One CJK letter or CJK punctuation mark (what Chinese text is mostly made of).
CJK_TEXT_CHAR = re.compile(f"[{CJK_RANGES}{CJK_PUNCTUATION}]")


def is_cjk(char: str) -> bool:
    """Whether ``char`` is a Chinese, Japanese or Korean letter.

    >>> is_cjk("熊"), is_cjk("か"), is_cjk("한"), is_cjk("a"), is_cjk("。")
    (True, True, True, False, False)
    """
    return bool(CJK_CHAR.match(char))
