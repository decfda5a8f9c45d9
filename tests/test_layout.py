"""The package layout, generated from the tree: arrows point jobs -> pipeline -> model, no import cycles.

Every module of model/, pipeline/ and jobs/ is parsed with `ast`, and each import statement in it
(function-local and `if TYPE_CHECKING:` ones included) is an arrow to the module it names: `import a.b.c`
to a.b.c, `from pkg import name` to pkg.name when that is a module, else to pkg (its __init__.py);
relative imports are resolved first. Modules outside the three packages are left out. One test per module
and rule, so that a failure names the module, the import's line and, for a cycle, the whole chain. Every
package's __init__.py must say in a docstring what the folder holds and what it may import.
"""

from __future__ import annotations

import ast
from collections import deque
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LAYERS = ("model", "pipeline", "jobs")  # each package may import itself and those before it only


def module_name(path: Path, root: Path) -> str:
    """`pipeline/video/decode.py` -> `pipeline.video.decode`; a package's __init__.py -> the package."""
    parts = list(path.relative_to(root).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def find_modules(root: Path, tops: tuple[str, ...] = LAYERS) -> dict[str, Path]:
    """Module name -> file of every module below the folders `tops` of `root`."""
    return {module_name(p, root): p for top in tops for p in sorted((root / top).rglob("*.py"))}


def arrows(module: str, files: dict[str, Path]) -> list[tuple[str, int]]:
    """(imported module, line) of every import in `module` that names one of `files` (not itself)."""
    path = files[module]
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found: list[tuple[str, int]] = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [(alias.name, node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: level 1 is this package, 2 its parent, ...
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            for alias in node.names:
                submodule = f"{base}.{alias.name}"
                found.append((submodule if submodule in files else base, node.lineno))
    return sorted({(name, line) for name, line in found if name in files and name != module})


def shortest_cycle(start: str, graph: dict[str, list[tuple[str, int]]]) -> list[tuple[str, int]] | None:
    """The shortest import chain from `start` back to itself as (module, line of its import of the next
    one), ending with (start, 0); None when `start` is in no cycle."""
    previous: dict[str, tuple[str, int]] = {}  # module -> (module that imports it, line) on a shortest path
    queue = deque([start])
    while queue:
        current = queue.popleft()
        for name, line in graph[current]:
            if name not in previous:
                previous[name] = (current, line)
                if name == start:
                    chain, node = [(start, 0)], start
                    while True:
                        node, line = previous[node]
                        chain.append((node, line))
                        if node == start:
                            return chain[::-1]
                queue.append(name)
    return None


def chain_text(chain: list[tuple[str, int]]) -> str:
    return " -> ".join(f"{name}:{line}" if line else name for name, line in chain)


FILES = find_modules(ROOT)
GRAPH = {module: arrows(module, FILES) for module in FILES}
PACKAGES = sorted(m for m, p in FILES.items() if p.name == "__init__.py")


@pytest.mark.parametrize("module", sorted(FILES))
def test_imports_point_down_the_layers(module):
    layer = LAYERS.index(module.split(".")[0])
    upward = [
        f"{module}:{line} imports {name}"
        for name, line in GRAPH[module]
        if LAYERS.index(name.split(".")[0]) > layer
    ]
    assert not upward, "; ".join(upward) + " (arrows point jobs -> pipeline -> model only)"


@pytest.mark.parametrize("module", sorted(FILES))
def test_module_is_in_no_import_cycle(module):
    cycle = shortest_cycle(module, GRAPH)
    assert cycle is None, f"import cycle (module:line of the import): {chain_text(cycle)}"


@pytest.mark.parametrize("package", PACKAGES)
def test_package_says_what_it_holds(package):
    assert ast.get_docstring(ast.parse(FILES[package].read_text())), f"{FILES[package]} has no docstring"


def test_the_arrows_follow_the_import_rules(tmp_path):
    # a small tree: each rule of the module docstring once, and a cycle hidden in a function body
    sources = {
        "model/__init__.py": '"""m"""\n',
        "model/a.py": "import model.b\nfrom model import c\nfrom model import CONSTANT\n",
        "model/b.py": "def late():\n    from . import a\n",
        "model/c.py": "from .b import late\nimport os\n",
    }
    for name, text in sources.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    files = find_modules(tmp_path, ("model",))
    graph = {module: arrows(module, files) for module in files}
    assert graph["model.a"] == [("model", 3), ("model.b", 1), ("model.c", 2)]
    assert graph["model.b"] == [("model.a", 2)] and graph["model.c"] == [("model.b", 1)]
    assert chain_text(shortest_cycle("model.a", graph)) == "model.a:1 -> model.b:2 -> model.a"
    assert chain_text(shortest_cycle("model.c", graph)) == "model.c:1 -> model.b:2 -> model.a:2 -> model.c"
    assert shortest_cycle("model", graph) is None
