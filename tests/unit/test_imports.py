"""Rooms import only downwards (README "How it works", issue 16 item 2).

A room is a package of ``mx_rec`` other than the doors; the doors ``mx_rec.util`` and ``mx_rec.core``
(and ``rec_sdk_common`` beside ``mx_rec``) are the thin Rec SDK import paths that re-export rooms
(they may import rooms, never the reverse); ``mx_rec.constants`` and ``mx_rec.system`` are the
ground floor and stand on no other room. A room may import any room below it, not only the next
floor down; no two rooms may stand on each other, directly or round a loop. Every import is
read with ``ast``, the ones inside functions and methods too, absolute and relative, plus any string
that is exactly a module's name (``importlib.import_module("mx_rec...")``, lazy-loader tables) and
``mx_rec.util``/``mx_rec.core`` reached as an attribute after ``import mx_rec``. Nothing is imported, so this takes well under
a second.
"""
import ast
from collections import defaultdict
from pathlib import Path
from typing import Dict, Iterator, List, NamedTuple, Optional, Set, Tuple

import pytest

from tests.paths import REPO

PACKAGE = "mx_rec"
DOORS = frozenset({"util", "core", "rec_sdk_common"})  # the last: Rec SDK's common package, beside mx_rec
GROUND = frozenset({"constants", "system"})


class Edge(NamedTuple):
    """One import: ``source`` (module file, relative to the package's parent) line ``line`` names
    ``target`` (a dotted module path inside the package)."""
    source: str
    line: int
    target: str

    def __str__(self) -> str:
        return f"{self.source}:{self.line} imports {self.target}"


def _module_name(root: Path, path: Path) -> Tuple[str, bool]:
    parts = list(path.relative_to(root.parent).with_suffix("").parts)
    is_package = parts[-1] == "__init__"
    if is_package:
        parts.pop()
    return ".".join(parts), is_package


def _resolve(module: str, is_package: bool, node: ast.ImportFrom) -> str:
    if not node.level:
        return node.module or ""
    base = module.split(".") if is_package else module.split(".")[:-1]
    base = base[:len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def _targets(tree: ast.AST, module: str, is_package: bool, modules: Set[str]) -> Iterator[Tuple[int, str]]:
    """(line, dotted target) for every import in ``tree``, at any depth; a string that is exactly the
    name of one of ``modules`` counts too (how lazy loaders name what ``importlib`` loads later)."""
    bound = False  # ``import mx_rec`` (or ``import mx_rec.x``) makes ``mx_rec.util`` reachable as an attribute
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
                bound = bound or (alias.name.split(".")[0] == PACKAGE and alias.asname is None)
        elif isinstance(node, ast.ImportFrom):
            resolved = _resolve(module, is_package, node)
            if resolved == PACKAGE:  # ``from mx_rec import util``: the names are the packages
                for alias in node.names:
                    yield node.lineno, f"{PACKAGE}.{alias.name}"
            else:
                yield node.lineno, resolved
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value in modules:
            yield node.lineno, node.value
    if bound:
        for node in ast.walk(tree):
            if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) \
                    and node.value.id == PACKAGE and node.attr in DOORS:
                yield node.lineno, f"{PACKAGE}.{node.attr}"


def scan(root: Path) -> List[Edge]:
    """Every import of ``root``'s package (a folder such as ``mx_rec_py/mx_rec``) or of
    ``rec_sdk_common`` by the package's own modules."""
    paths = sorted(root.rglob("*.py"))
    names = {path: _module_name(root, path) for path in paths}
    modules = {module for module, _ in names.values()} - {root.name}  # "mx_rec" alone is also the logger's name
    edges = []
    for path in paths:
        module, is_package = names[path]
        tree = ast.parse(path.read_text(), filename=str(path))
        source = str(path.relative_to(root.parent))
        for line, target in _targets(tree, module, is_package, modules):
            if target.split(".")[0] in (root.name, "rec_sdk_common"):
                edges.append(Edge(source, line, target))
    return edges


def packages(root: Path) -> Set[str]:
    """The rooms and doors: the packages directly under ``root``."""
    return {p.name for p in root.iterdir() if (p / "__init__.py").is_file()}


def _room(dotted: str) -> Optional[str]:
    """The room (or door) a module belongs to: its first package below the top; None for the top."""
    parts = dotted.split(".")
    if parts[0] != PACKAGE:
        return parts[0]
    return parts[1] if len(parts) > 1 else None


def _source_room(source: str) -> Optional[str]:
    parts = Path(source).with_suffix("").parts
    return parts[1] if len(parts) > 2 else None  # mx_rec/__init__.py and mx_rec/x.py: the top


def _components(nodes: Set[str], deps: Dict[str, Set[str]]) -> List[List[str]]:
    """Strongly connected components (Tarjan), each sorted, dependencies before dependants."""
    index: Dict[str, int] = {}
    low: Dict[str, int] = {}
    stack: List[str] = []
    on_stack: Set[str] = set()
    out: List[List[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(deps[node]):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                top = stack.pop()
                on_stack.discard(top)
                component.append(top)
                if top == node:
                    break
            out.append(sorted(component))

    for node in sorted(nodes):
        if node not in index:
            visit(node)
    return out


class Report(NamedTuple):
    floors: List[List[str]]  # bottom to top; rooms in a cycle share one entry, joined with "<->"
    problems: List[str]


def check(edges: List[Edge], packages: Set[str]) -> Report:
    """The floors of the rooms among ``packages`` and every breach of the rule among ``edges``."""
    problems: List[str] = []
    deps: Dict[str, Set[str]] = defaultdict(set)
    evidence: Dict[Tuple[str, str], List[Edge]] = defaultdict(list)
    rooms = set(packages) - DOORS
    for edge in edges:
        src, dst = _source_room(edge.source), _room(edge.target)
        if dst not in packages and dst not in DOORS:
            dst = None  # ``from mx_rec import version``: a name of the top-level package, not a room
        if src is None or src in DOORS:
            continue  # the top-level package and the doors may import anything below them
        if dst is None or dst == src:
            continue
        if dst in DOORS:
            problems.append(f"room {src} stands on the door {dst}: {edge}")
            continue
        if src in GROUND and dst not in GROUND:
            problems.append(f"ground floor {src} stands on room {dst}: {edge}")
        deps[src].add(dst)
        evidence[(src, dst)].append(edge)
    components = _components(rooms, deps)
    for component in components:
        if len(component) > 1:
            inside = [f"    {e}" for a in component for b in component for e in evidence.get((a, b), [])]
            problems.append(f"cycle between rooms {' <-> '.join(component)}:\n" + "\n".join(inside))
    floor_of: Dict[str, int] = {}
    for component in components:  # dependencies come first
        below = [floor_of[d] for r in component for d in deps[r] if d not in component]
        for room in component:
            floor_of[room] = 1 + max(below, default=-1)
    floors: List[List[str]] = [[] for _ in range(1 + max(floor_of.values(), default=-1))]
    for component in components:
        floors[floor_of[component[0]]].append(" <-> ".join(component))
    return Report([sorted(f) for f in floors], problems)


def describe(report: Report) -> str:
    """The floors, bottom to top, one a line (floor 0 stands on no other room)."""
    lines = [f"  floor {i}: {', '.join(rooms)}" for i, rooms in enumerate(report.floors)]
    return "\n".join(lines + [f"  doors on top: {', '.join(sorted(DOORS))}"])


def test_rooms_import_only_downwards():
    """No cycle of rooms, no room on a door, the ground floor on nothing else; names file and line."""
    root = REPO / "mx_rec_py" / PACKAGE
    edges = scan(root)
    report = check(edges, packages(root))
    # A scan that found nothing would pass vacuously: the SDK's lookups do stand on its tables.
    assert any(e.source.startswith(f"{PACKAGE}/lookup/") and _room(e.target) == "tables" for e in edges), \
        f"the scan of {root} found no import of tables by lookup ({len(edges)} imports in all)"
    if report.problems:
        pytest.fail("rooms must import only downwards; found:\n" + "\n".join(report.problems)
                    + "\nroom order found (bottom to top):\n" + describe(report), pytrace=False)


def _write(root: Path, files: Dict[str, str]) -> Path:
    for name, text in files.items():
        path = root / "mx_rec" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root / "mx_rec"


def test_scan_sees_every_kind_of_import(tmp_path):
    """The checker itself: relative and function-level imports, door names, a cycle, the floors."""
    root = _write(tmp_path, {
        "__init__.py": "",
        "constants/__init__.py": "",
        "core/__init__.py": "",
        "util/__init__.py": "from mx_rec.low import a\n",
        "low/__init__.py": "",
        "low/a.py": "from .. import constants\nfrom mx_rec.util import log\n",
        "mid/__init__.py": "",
        "mid/b.py": "from ..low import a\n\ndef f():\n    from mx_rec.high import c\n",
        "high/__init__.py": "from . import c\n",
        "high/c.py": "import importlib\nfrom mx_rec.mid import b\nfrom mx_rec import core\n"
                     "importlib.import_module('mx_rec.low.a')\n",
        "lone/__init__.py": "import os\nimport rec_sdk_common.communication\n_LAZY = {'hook': 'mx_rec.core'}\n"
                            "from mx_rec import __version__\n",
        "top/__init__.py": "import mx_rec\n\ndef g():\n    return mx_rec.util.initialize\n",
    })
    report = check(scan(root), packages(root))
    text = "\n".join(report.problems) + "\n"
    assert "room low stands on the door util: mx_rec/low/a.py:2 imports mx_rec.util" in text
    assert "room high stands on the door core: mx_rec/high/c.py:3 imports mx_rec.core" in text
    assert "room top stands on the door util: mx_rec/top/__init__.py:4 imports mx_rec.util" in text
    assert "cycle between rooms high <-> mid:" in text
    assert "mx_rec/mid/b.py:4 imports mx_rec.high\n" in text and "mx_rec/high/c.py:2 imports mx_rec.mid\n" in text
    assert "room lone stands on the door rec_sdk_common: mx_rec/lone/__init__.py:2" in text
    assert "room lone stands on the door core: mx_rec/lone/__init__.py:3 imports mx_rec.core" in text
    assert len(report.problems) == 6, text
    assert report.floors == [["constants", "lone", "top"], ["low"], ["high <-> mid"]], report.floors
