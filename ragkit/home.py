"""Where named indexes live: the one rule, applied by :func:`index_home`.

The first of these that applies, checked on every call:

1. ``$RAGKIT_HOME``, when it is set;
2. ``./indexes``, when it already holds a ragkit index (a folder with a ``manifest.json``),
   so indexes built where ragkit used to put them are still found;
3. ``<checkout>/indexes``, when the current folder is inside a ragkit source checkout (a
   ``pyproject.toml`` naming the project ``ragkit``), so ``make demo`` and the tests keep
   their indexes in the project;
4. ``$XDG_DATA_HOME/ragkit/indexes`` (``~/.local/share/ragkit/indexes`` by default), the
   same folder from anywhere, so an index built in one folder is found from every other.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from .errors import IndexNotFoundError
from .settings import Settings

__all__ = ["Home", "index_home", "locate_home", "not_found", "other_homes_holding"]

_MANIFEST = "manifest.json"  # what marks a folder as an index (see ragkit.store)
_PROJECT_NAME = re.compile(r'^name\s*=\s*["\']ragkit["\']\s*$', re.MULTILINE)


@dataclass(frozen=True)
class Home:
    """The folder named indexes live in, and which rule chose it (for messages)."""

    path: Path
    why: str


def index_home() -> Path:
    """Where named indexes live (see the module docstring for the rule)."""
    return locate_home().path


def locate_home(cwd: Path | None = None) -> Home:
    """The index home seen from ``cwd`` (default: the current folder), with its reason."""
    if (configured := Settings.from_env().home) is not None:
        return Home(configured, "RAGKIT_HOME")
    here = (cwd or Path.cwd()).absolute()
    if _holds_indexes(here / "indexes"):
        return Home(here / "indexes", "./indexes holds indexes")
    if (checkout := _checkout_around(here)) is not None:
        return Home(checkout / "indexes", "inside the ragkit checkout")
    return Home(user_home(), "the default outside a ragkit checkout")


def user_home() -> Path:
    """``$XDG_DATA_HOME/ragkit/indexes``, or ``~/.local/share/ragkit/indexes``."""
    return Settings.from_env().data_home / "ragkit" / "indexes"


def other_homes_holding(name: str, cwd: Path | None = None) -> list[Path]:
    """Index folders called ``name`` in the homes the rule did not choose from ``cwd``.

    Looked at: ``./indexes``, the checkout around ``cwd``, the checkout ragkit itself
    runs from (an editable install) and the user-level home.  Used to say where a
    missing index is, when it exists elsewhere.
    """
    here = (cwd or Path.cwd()).absolute()
    chosen = locate_home(here).path
    candidates = [here / "indexes", user_home()]
    for start in (here, Path(__file__).resolve().parent):
        if (checkout := _checkout_around(start)) is not None:
            candidates.append(checkout / "indexes")
    found: list[Path] = []
    for home in candidates:
        path = home / name
        if _same(home, chosen) or not (path / _MANIFEST).is_file():
            continue
        if not any(_same(path, seen) for seen in found):
            found.append(path)
    return found


def not_found(name_or_path: str, path: Path, named: bool) -> IndexNotFoundError:
    """The error for a missing index at ``path``; ``named`` when it came from the home rule.

    A bare name says which home was searched and why, and where an index of that
    name is, if one of the other homes has it.
    """
    if not named:
        return IndexNotFoundError(name_or_path, str(path.parent))
    home = locate_home()
    others = other_homes_holding(path.name)
    return IndexNotFoundError(name_or_path, str(path.parent.absolute()), home.why,
                              str(others[0]) if others else "")


def _holds_indexes(folder: Path) -> bool:
    try:
        return any((child / _MANIFEST).is_file() for child in folder.iterdir())
    except OSError:  # missing, or not a folder, or unreadable
        return False


def _checkout_around(folder: Path) -> Path | None:
    """The ragkit source checkout that ``folder`` is in, if any."""
    for candidate in (folder, *folder.parents):
        try:
            text = (candidate / "pyproject.toml").read_text(encoding="utf-8", errors="replace")
        except OSError:
            continue
        if _PROJECT_NAME.search(text) and (candidate / "ragkit").is_dir():
            return candidate
    return None


def _same(a: Path, b: Path) -> bool:
    try:
        return a.resolve() == b.resolve()
    except OSError:
        return False
