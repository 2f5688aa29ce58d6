"""E-mail: one message (``.eml``) or a mailbox of them (``.mbox``), with the email module.

A message becomes its subject as the heading (its location), then From, To
and Date lines, then its body: the plain-text part, else the HTML part
converted as the HTML reader does.  Attachments are listed by name, not
indexed.  In a mailbox each message is a part, cited as ``message N``.
"""

from __future__ import annotations

import re
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from pathlib import Path

from ..errors import LoadError
from .markup import Part, escape, heading, join_blocks
from .readers import html_to_text

__all__ = ["read_eml", "read_mbox"]

_FROM_LINE = re.compile(rb"^From [^\n]*\n", re.MULTILINE)
_DEEPER = re.compile(r"^(#{1,5}) ", re.MULTILINE)
_QUOTED_FROM = re.compile(rb"^>(>*From )", re.MULTILINE)


def read_eml(path: Path, data: bytes, limit: int) -> list[Part]:
    """One e-mail message as one part."""
    text = _message_text(data)
    if text is None:
        raise LoadError(str(path), "not an e-mail message (no From, Subject or Date header)")
    return [(None, text)]


def read_mbox(path: Path, data: bytes, limit: int) -> list[Part]:
    """Each message of an mbox mailbox as one part, numbered from 1."""
    # As Python's mailbox does: a message starts at each line that starts with "From "
    # (a writer escapes such lines inside bodies as ">From ").
    marks = list(_FROM_LINE.finditer(data))
    if not marks or marks[0].start() != 0:
        raise LoadError(str(path), "not an mbox mailbox (it does not start with a From line)")
    ends = [m.start() for m in marks[1:]] + [len(data)]
    parts: list[Part] = []
    for n, (mark, end) in enumerate(zip(marks, ends, strict=True), 1):
        text = _message_text(_QUOTED_FROM.sub(rb"\1", data[mark.end():end]))
        if text:
            parts.append((n, text))
    return parts


def _message_text(raw: bytes) -> str | None:
    """A message as markdown; None if it has none of the headers a message has."""
    message = BytesParser(policy=policy.default).parsebytes(raw)
    assert isinstance(message, EmailMessage)
    subject, sender, date = (_header(message, h) for h in ("subject", "from", "date"))
    if not (subject or sender or date):
        return None
    lines = [f"{name}: {value}" for name, value in
             (("From", sender), ("To", _header(message, "to")), ("Date", date)) if value]
    files = [part.get_filename() or part.get_content_type()
             for part in message.iter_attachments()]
    attached = "Attachments (not indexed): " + ", ".join(files) if files else ""
    return join_blocks([heading(1, subject or "(no subject)"), "\n".join(lines),
                        _body(message), attached])


def _header(message: EmailMessage, name: str) -> str:
    try:
        return " ".join(str(message.get(name, "")).split())
    except (ValueError, LookupError, TypeError):  # a header the policy cannot parse
        return ""


def _body(message: EmailMessage) -> str:
    """The plain-text body, else the HTML one as text; "" if there is neither."""
    part = message.get_body(preferencelist=("plain", "html"))
    if part is None:
        return ""
    try:
        content = part.get_content()
    except (LookupError, ValueError, AssertionError):  # unknown charset, broken encoding
        payload = part.get_payload(decode=True)
        content = payload.decode("utf-8", "replace") if isinstance(payload, bytes) else ""
    if not isinstance(content, str):
        return ""
    content = content.replace("\r\n", "\n").replace("\r", "\n")
    if part.get_content_subtype() == "html":
        # The page's headings go below the subject, which heads the message.
        return _DEEPER.sub(r"#\1 ", html_to_text(content))
    return escape(content.strip())
