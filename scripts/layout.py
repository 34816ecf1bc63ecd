"""Measure the layout of desk/ from its imports, as ARCHITECTURE.md's aims are stated:

    python3 scripts/layout.py [REPO]

Prints, for modules and for rooms (a top-level package of desk/ counts as one room, a
flat module as one): how many, the import edges between them, the layers (the longest
chain of imports), the edges that point back up (close a cycle), the largest module and
how many modules sit flat in desk/. Migrations are left out. Standard library only.
"""

from __future__ import annotations

import ast
import functools
import sys
from pathlib import Path


def module_graph(desk: Path) -> tuple[dict[str, Path], set[tuple[str, str]]]:
    mods: dict[str, Path] = {}
    for path in desk.rglob("*.py"):
        if "migrations" in path.parts:
            continue
        name = ".".join(path.relative_to(desk.parent).with_suffix("").parts)
        mods[name.removesuffix(".__init__")] = path
    edges: set[tuple[str, str]] = set()
    for name, path in mods.items():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            targets: list[str] = []
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0 \
                    and node.module.startswith("desk"):
                # `from desk.x import y` names module desk.x.y when there is one.
                targets = [f"{node.module}.{a.name}" if f"{node.module}.{a.name}" in mods
                           else node.module for a in node.names]
            elif isinstance(node, ast.Import):
                targets = [a.name for a in node.names if a.name.startswith("desk")]
            for target in targets:
                while target not in mods and "." in target:
                    target = target.rsplit(".", 1)[0]
                if target in mods and target != name:
                    edges.add((name, target))
    return mods, edges


def measure(nodes: set[str], edges: set[tuple[str, str]]) -> tuple[int, int, int]:
    """(edges, layers, edges pointing back up)."""
    graph = {n: sorted(t for s, t in edges if s == n) for n in nodes}
    state: dict[str, int] = {}
    back: set[tuple[str, str]] = set()

    def visit(node: str) -> None:
        state[node] = 1
        for nxt in graph[node]:
            if state.get(nxt) == 1:
                back.add((node, nxt))
            elif nxt not in state:
                visit(nxt)
        state[node] = 2

    sys.setrecursionlimit(10_000)
    for node in sorted(nodes):
        if node not in state:
            visit(node)

    @functools.cache
    def depth(node: str) -> int:
        return 1 + max((depth(n) for n in graph[node] if (node, n) not in back), default=0)

    return len(edges), max(map(depth, nodes), default=0), len(back)


def room(module: str, mods: dict[str, Path]) -> str:
    parts = module.split(".")
    top = ".".join(parts[:2])
    return top if len(parts) > 2 or mods[module].name == "__init__.py" else module


def main() -> None:
    repo = Path(sys.argv[1] if len(sys.argv) > 1 else Path(__file__).resolve().parents[1])
    desk = repo / "desk"
    mods, edges = module_graph(desk)
    n_edges, layers, back = measure(set(mods), edges)
    print(f"modules: {len(mods)}, import edges {n_edges}, layers {layers}, "
          f"pointing back up {back}")
    rooms = {room(m, mods) for m in mods if m != "desk"}
    room_edges = {(room(a, mods), room(b, mods)) for a, b in edges
                  if "desk" not in (a, b) and room(a, mods) != room(b, mods)}
    n_edges, layers, back = measure(rooms, room_edges)
    print(f"rooms:   {len(rooms)}, import edges {n_edges}, layers {layers}, "
          f"pointing back up {back}")
    lines, largest = max((len(p.read_text(encoding="utf-8").splitlines()), str(p.relative_to(repo)))
                         for p in mods.values())
    print(f"largest module: {largest} ({lines} lines); "
          f"flat in desk/: {len(list(desk.glob('*.py')))} modules")


if __name__ == "__main__":
    main()
