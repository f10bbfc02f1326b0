"""The shape of the code in figures: import cycles, long functions, imports inside functions.

    python tools/shape.py            # print the figures
    python tools/shape.py --check    # also fail (exit 1) when a limit is broken

Cycles are strongly connected groups of project modules in the import graph (grimp, the graph
import-linter checks), counting imports inside functions too: an import moved into a function
to dodge a cycle still counts. The limits `--check` enforces (`make lint` runs it): no cycle,
no function longer than ``--max-lines`` (80), and no project import inside a function unless
the line before it, or the import's own line, carries a comment that says why (``# cycle:`` or
``# deferred:``).
"""

from __future__ import annotations

import argparse
import ast
import sys
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("skilltrial", "trials", "quizzes", "analysis", "api")
# Shipped into the sandbox and run there, not imported by the server: not part of the graph.
SKIP_PARTS = ("migrations",)
SKIP_PREFIXES = ("trials/judge/sandbox/",)
REASON_MARKERS = ("# cycle:", "# deferred:")


@dataclass(frozen=True)
class LongFunction:
    where: str
    name: str
    lines: int


@dataclass(frozen=True)
class LocalImport:
    where: str
    module: str
    explained: bool


def source_files() -> list[Path]:
    files = []
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            relative = path.relative_to(ROOT).as_posix()
            if any(part in path.parts for part in SKIP_PARTS):
                continue
            if relative.startswith(SKIP_PREFIXES):
                continue
            files.append(path)
    return files


def _is_project(module: str | None, level: int) -> bool:
    return level > 0 or (module or "").split(".")[0] in PACKAGES


def scan(path: Path) -> tuple[list[LongFunction], list[LocalImport]]:
    text = path.read_text()
    lines = text.splitlines()
    tree = ast.parse(text, filename=str(path))
    relative = path.relative_to(ROOT).as_posix()
    long_functions: list[LongFunction] = []
    local_imports: list[LocalImport] = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            continue
        length = (node.end_lineno or node.lineno) - node.lineno + 1
        long_functions.append(LongFunction(f"{relative}:{node.lineno}", node.name, length))
        for inner in ast.walk(node):
            if isinstance(inner, ast.ImportFrom) and _is_project(inner.module, inner.level):
                module = inner.module or "."
            elif isinstance(inner, ast.Import) and any(
                _is_project(alias.name, 0) for alias in inner.names
            ):
                module = inner.names[0].name
            else:
                continue
            nearby = lines[inner.lineno - 2 : inner.end_lineno or inner.lineno]
            explained = any(marker in line for line in nearby for marker in REASON_MARKERS)
            local_imports.append(LocalImport(f"{relative}:{inner.lineno}", module, explained))
    return long_functions, local_imports


def cycles() -> list[list[str]]:
    """Groups of project modules that import each other, directly or around a loop."""
    import grimp  # deferred: a dev tool, only this script needs it

    sys.path.insert(0, str(ROOT))
    graph = grimp.build_graph(*PACKAGES)
    modules = {m for m in graph.modules if ".migrations" not in m}
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups: list[list[str]] = []
    counter = 0

    # Tarjan's strongly connected components, iterative (the graph has hundreds of modules).
    for start in sorted(modules):
        if start in index:
            continue
        work = [(start, iter(sorted(graph.find_modules_directly_imported_by(start) & modules)))]
        index[start] = low[start] = counter
        counter += 1
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    imported = graph.find_modules_directly_imported_by(child) & modules
                    work.append((child, iter(sorted(imported))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
            if low[node] == index[node]:
                group = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    group.append(member)
                    if member == node:
                        break
                if len(group) > 1:
                    groups.append(sorted(group))
    return sorted(groups)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 1 when a limit is broken")
    parser.add_argument("--max-lines", type=int, default=80)
    args = parser.parse_args(argv)

    functions: list[LongFunction] = []
    imports: list[LocalImport] = []
    for path in source_files():
        found_functions, found_imports = scan(path)
        functions += found_functions
        imports += found_imports
    over = sorted((f for f in functions if f.lines > args.max_lines), key=lambda f: -f.lines)
    unexplained = [i for i in imports if not i.explained]
    groups = cycles()

    print(f"import cycles (groups of modules): {len(groups)}")
    for group in groups:
        print("  " + " <-> ".join(group))
    print(
        f"functions: {len(functions)}; over 40 lines: {sum(f.lines > 40 for f in functions)}; "
        f"over {args.max_lines}: {len(over)}; over 100: {sum(f.lines > 100 for f in functions)}"
    )
    for f in over:
        print(f"  {f.lines:4d}  {f.where}  {f.name}")
    print(
        f"project imports inside functions: {len(imports)} "
        f"({len(unexplained)} without a '# cycle:' or '# deferred:' reason)"
    )
    for i in unexplained:
        print(f"  {i.where}  {i.module}")
    broken = bool(groups or over or unexplained)
    if args.check and broken:
        print("shape check failed: see above", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
