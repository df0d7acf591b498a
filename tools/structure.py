"""Print pgdrill's structure in numbers: lines per area, the longest functions, files over a size,
and the engine's import layers (a module's layer is one above the highest module it imports).

    .venv/bin/python tools/structure.py [REPO]

Used to show a refactoring's before and after; nothing here is a test.
"""

import ast
import os
import sys
from typing import Dict, List, Set, Tuple

AREAS = {
    "engine": ["module_utils/pgdrill"],
    "modules": ["library"],
    "roles": ["roles"],
    "playbooks": ["playbooks"],
    "tests": ["tests"],
    "docs": ["README.md", "docs"],
    "lab": ["lab"],
    "bench": ["bench"],
}
SOURCE = (".py", ".yml", ".yaml", ".j2", ".md", ".cfg", ".toml", ".example")


def files_under(repo: str, path: str) -> List[str]:
    full = os.path.join(repo, path)
    if os.path.isfile(full):
        return [full]
    found = []
    for root, dirs, names in os.walk(full):
        dirs[:] = [d for d in dirs if not d.startswith(".") and d != "__pycache__"]
        found.extend(os.path.join(root, n) for n in names if n.endswith(SOURCE))
    return sorted(found)


def line_count(path: str) -> int:
    with open(path, encoding="utf-8", errors="replace") as handle:
        return sum(1 for _ in handle)


def functions(path: str) -> List[Tuple[int, str]]:
    with open(path, encoding="utf-8") as handle:
        tree = ast.parse(handle.read())
    found = []
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.end_lineno:
            found.append((node.end_lineno - node.lineno + 1, node.name))
    return found


def engine_imports(path: str, package: str) -> Set[str]:
    with open(path, encoding="utf-8") as handle:
        tree = ast.parse(handle.read())
    here = os.path.relpath(path, package)
    parts = here[:-3].split(os.sep)
    names: Set[str] = set()
    for node in ast.walk(tree):
        if not isinstance(node, ast.ImportFrom):
            continue
        module = node.module or ""
        if node.level:
            base = parts[: len(parts) - node.level]
            target = base + (module.split(".") if module else [])
        elif module.startswith("ansible.module_utils.pgdrill"):
            target = module.split(".")[3:]
        else:
            continue
        joined = ".".join(t for t in target if t and t != "__init__")
        names.add(joined)
        # "from . import x": x is a module of that package, or a name its __init__ defines (then the
        # package itself, added above, is what is imported); names that are no module drop out later.
        names.update((joined + "." if joined else "") + alias.name for alias in node.names)
    return names


def module_name(path: str, package: str) -> str:
    name = os.path.relpath(path, package)[:-3].replace(os.sep, ".")
    return name[: -len(".__init__")] if name.endswith(".__init__") else name


def layers(graph: Dict[str, Set[str]]) -> Tuple[Dict[str, int], List[str]]:
    level: Dict[str, int] = {}
    cyclic: List[str] = []

    def visit(name: str, stack: Tuple[str, ...]) -> int:
        if name in level:
            return level[name]
        if name in stack:
            cyclic.append(" -> ".join(stack[stack.index(name) :] + (name,)))
            return 0
        below = [visit(d, stack + (name,)) for d in sorted(graph.get(name, ())) if d in graph and d != name]
        level[name] = 1 + max(below, default=-1)
        return level[name]

    for name in sorted(graph):
        visit(name, ())
    return level, sorted(set(cyclic))


def main(repo: str) -> None:
    print("## lines per area")
    for area, paths in AREAS.items():
        files = [f for p in paths for f in files_under(repo, p)]
        print(f"{area:10} {sum(line_count(f) for f in files):7} lines in {len(files)} files")
    drill_tasks = files_under(repo, "roles/pgdrill_drill/tasks")
    print(f"drill role tasks: {sum(line_count(f) for f in drill_tasks)} lines in {len(drill_tasks)} files")

    python = [f for p in ("module_utils/pgdrill", "library") for f in files_under(repo, p) if f.endswith(".py")]
    print("\n## files over 500 lines")
    for path in python:
        if line_count(path) > 500:
            print(f"{line_count(path):5} {os.path.relpath(path, repo)}")

    print("\n## longest functions")
    every = [(size, name, os.path.relpath(path, repo)) for path in python for size, name in functions(path)]
    for size, name, path in sorted(every, reverse=True)[:12]:
        print(f"{size:5} {path}::{name}")

    package = os.path.join(repo, "module_utils", "pgdrill")
    engine = [f for f in files_under(repo, "module_utils/pgdrill") if f.endswith(".py") and "contrib" not in f]
    graph = {module_name(f, package): engine_imports(f, package) for f in engine}
    level, cycles = layers(graph)
    print("\n## engine import layers, top first (layer: modules)")
    for number in sorted(set(level.values()), reverse=True):
        print(f"{number:2}: " + " ".join(sorted(n for n in level if level[n] == number and n != "")))
    print("cycles: " + ("; ".join(cycles) if cycles else "none"))

    print("\n## what each front end imports from the engine")
    fronts = sorted(f for f in files_under(repo, "library") if f.endswith(".py"))
    fronts += [os.path.join(package, "cli.py")]
    fronts += [f for f in files_under(repo, "module_utils/pgdrill/contrib") if f.endswith(".py") and "management" in f]
    for path in fronts:
        if os.path.exists(path):
            used = sorted(n for n in engine_imports(path, package) if n in graph)
            print(f"{os.path.relpath(path, repo)}: {' '.join(used)}")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
