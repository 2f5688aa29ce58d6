"""The layout's rules, checked on the source: no import cycles between ragkit's modules,
no private name imported from another package, no import back up to the package root,
and a public API (``ragkit.__all__``) that is what the package exports."""

from __future__ import annotations

import ast
import functools
import importlib
import inspect
import subprocess
import sys
import typing
from collections.abc import Iterator
from pathlib import Path

import pytest

import ragkit

ROOT = Path(ragkit.__file__).parent
#: The modules users import from: the facade and what it hands back.
API_MODULES = ("index", "queries", "answering", "retrieval", "conversation", "errors")


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def package_of(path: Path) -> str:
    name = module_name(path)
    return name if path.name == "__init__.py" else name.rpartition(".")[0]


MODULES = {module_name(p): p for p in sorted(ROOT.rglob("*.py"))}


@functools.cache
def tree_of(path: Path) -> ast.Module:
    return ast.parse(path.read_text(encoding="utf-8"))


def type_checking_only(path: Path) -> set[int]:
    """Ids of the nodes under ``if TYPE_CHECKING:``: annotations only, never run."""
    nodes: set[int] = set()
    for node in ast.walk(tree_of(path)):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            for inner in node.body:
                nodes.update(id(n) for n in ast.walk(inner))
    return nodes


def imports(path: Path) -> Iterator[tuple[ast.AST, str, list[str]]]:
    """(node, absolute module, names) for each ``from X import names`` and ``import X``."""
    for node in ast.walk(tree_of(path)):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package_of(path).split(".")
                base = base[: len(base) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            yield node, target, [alias.name for alias in node.names]
        elif isinstance(node, ast.Import):
            for alias in node.names:
                yield node, alias.name, []


def edges(path: Path) -> set[str]:
    """The ragkit modules ``path`` imports when it runs (type-only imports left out)."""
    skip = type_checking_only(path)
    found: set[str] = set()
    for node, target, names in imports(path):
        if id(node) in skip:
            continue
        submodules = [f"{target}.{n}" for n in names if f"{target}.{n}" in MODULES]
        found.update(submodules or ([target] if target in MODULES else []))
    return found


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle of ``graph`` as a list of modules, or None."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return [*path[path.index(nxt):], nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        path.pop()
        state[node] = 2
        return None

    for start in sorted(graph):
        if start not in state and (cycle := visit(start)):
            return cycle
    return None


def test_find_cycle_finds_one_and_only_one() -> None:
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b", "c"}, "b": {"c"}, "c": set()}) is None


def test_no_import_cycle_between_ragkit_modules() -> None:
    graph = {name: {t for t in edges(path) if t != name} for name, path in MODULES.items()}
    # A package's __init__ runs before its modules: an edge to it is not a dependency on them.
    assert find_cycle(graph) is None


def private_imports_across_packages() -> list[str]:
    found = []
    for name, path in MODULES.items():
        for node, target, names in imports(path):
            if not target.startswith("ragkit"):
                continue
            target_package = target if (ROOT.parent / target.replace(".", "/")).is_dir() else (
                target.rpartition(".")[0])
            for imported in names:
                private = imported.startswith("_") and not imported.startswith("__")
                if private and target_package != package_of(path):
                    found.append(f"{name}:{node.lineno} imports {target}.{imported}")
    return found


def test_no_private_name_is_imported_from_another_package() -> None:
    assert private_imports_across_packages() == []


def test_nothing_imports_back_up_from_the_package_root() -> None:
    """``from .. import X`` hides where X lives and invites cycles through ragkit/__init__."""
    found = [f"{name}:{node.lineno}" for name, path in MODULES.items() if name != "ragkit"
             for node, target, names in imports(path) if target == "ragkit"
             and not any(f"ragkit.{n}" in MODULES for n in names)]
    assert found == []


def test_every_name_in_all_is_importable_from_the_package() -> None:
    for name in ragkit.__all__:
        assert getattr(ragkit, name) is not None, name
    assert sorted(dir(ragkit)) == sorted(ragkit.__all__)


def test_the_api_modules_public_classes_are_exported() -> None:
    """What the facade's modules offer as classes (PromptTooLongError was once missing)."""
    missing = []
    for module_name_ in API_MODULES:
        module = importlib.import_module(f"ragkit.{module_name_}")
        missing += [name for name in module.__all__
                    if inspect.isclass(getattr(module, name)) and name not in ragkit.__all__]
    assert missing == []


def test_what_index_methods_take_and_return_can_be_named_from_ragkit() -> None:
    seen: set[type] = set()

    def walk(annotation: object) -> None:
        for arg in typing.get_args(annotation):
            walk(arg)
        if inspect.isclass(annotation) and annotation.__module__.startswith("ragkit"):
            seen.add(annotation)

    for name, member in inspect.getmembers(ragkit.Index):
        if name.startswith("_"):
            continue
        function = member.fget if isinstance(member, property) else member
        if callable(function):
            for annotation in typing.get_type_hints(function).values():
                walk(annotation)
    assert seen, "no annotations found: the check would be empty"
    assert sorted(c.__name__ for c in seen if c.__name__ not in ragkit.__all__) == []


@pytest.mark.parametrize("package", ["loading", "chunking", "ingest", "store", "backends", "cli"])
def test_each_package_offers_what_its_all_says(package: str) -> None:
    module = importlib.import_module(f"ragkit.{package}")
    assert module.__doc__ and module.__all__
    for name in module.__all__:
        value = getattr(module, name)
        if inspect.isclass(value) or inspect.isfunction(value):  # defined in the package
            assert value.__module__.startswith(f"ragkit.{package}."), (name, value.__module__)


def environment_uses(path: Path) -> list[str]:
    """Where a module reads or writes the environment: ``os.environ``, ``os.getenv``,
    ``os.putenv``/``unsetenv``, or those names imported from ``os``."""
    found = []
    for node in ast.walk(tree_of(path)):
        if isinstance(node, ast.Attribute) and node.attr in ("environ", "environb", "getenv",
                                                            "putenv", "unsetenv"):
            found.append(f"{module_name(path)}:{node.lineno}: {ast.unparse(node)}")
        elif isinstance(node, ast.ImportFrom) and node.module == "os":
            names = {a.name for a in node.names} & {"environ", "getenv", "putenv", "unsetenv"}
            found.extend(f"{module_name(path)}:{node.lineno}: from os import {n}" for n in names)
    return found


def test_environment_uses_are_found() -> None:
    tree = ast.parse("import os\nx = os.environ.get('A')\nos.environ['B'] = '1'\n"
                     "from os import getenv\n")
    uses = [n for n in ast.walk(tree) if isinstance(n, ast.Attribute) and n.attr == "environ"]
    assert len(uses) == 2
    assert environment_uses(MODULES["ragkit.settings"])  # the one module that reads it


def test_only_settings_reads_or_writes_the_environment() -> None:
    # No module builds an environment for a child process either (none starts one with
    # env=...): if one must, list it here with the reason.
    found = [use for name, path in MODULES.items() if name != "ragkit.settings"
             for use in environment_uses(path)]
    assert found == []


def test_the_command_line_loads_no_heavy_module_until_a_command_runs() -> None:
    """`ragkit --help` stays fast: numpy, FAISS and the readers load with the commands."""
    code = ("import sys\nfrom click.testing import CliRunner\nfrom ragkit.cli.main import cli\n"
            "assert CliRunner().invoke(cli, ['--help']).exit_code == 0\n"
            "heavy = ('numpy', 'faiss', 'ragkit.retrieval', 'ragkit.ingest.prepare')\n"
            "print(sorted(m for m in heavy if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"
