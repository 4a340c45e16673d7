"""The package's modules import each other without a circle: the graph of module-level
imports between ``minipruner`` modules (read with ``ast``, so nothing is imported) has no
cycle. Function-local imports are left out of the graph; those that remain are listed here
with their reason, and any other one fails the test."""

import ast
from pathlib import Path

import minipruner

PACKAGE = Path(minipruner.__file__).parent

# (module, imported module) of every function-local import between package modules, each
# with the reason it is inside a function rather than at the top of its module.
LOCAL_IMPORTS: dict[tuple[str, str], str] = {
    # the training loop loads only when a network is asked for, so reading results is light
    ("minipruner.experiments.protocol", "minipruner.core.train"): "training code loaded on demand",
    ("minipruner.core.train", "minipruner.core.device_data"): "GPU data pipeline loaded on demand",
    ("minipruner.core.train", "minipruner.core.data"): "datasets loaded by trained() only",
    ("minipruner.core.train", "minipruner.core.models"): "models loaded by trained() only",
    ("minipruner.core.train", "minipruner.core.scale"): "read by trained() only",
}


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules() -> dict[str, Path]:
    return {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def imported(name: str, path: Path, node: ast.Import | ast.ImportFrom, known: set) -> set:
    """The package modules one import statement of module ``name`` loads."""
    if isinstance(node, ast.Import):
        return {a.name for a in node.names if a.name in known}
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    if node.level:
        base = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
        target = f"{base}.{node.module}" if node.module else base
    else:
        target = node.module or ""
    submodules = {f"{target}.{a.name}" for a in node.names} & known
    # ``from package import submodule`` loads the submodule; any other name is read from the
    # package's ``__init__`` (parent packages, loaded first anyway, are left out)
    reads_package = len(submodules) < len(node.names) and target in known
    return submodules | ({target} if reads_package else set())


def import_graph() -> tuple[dict[str, set[str]], set[tuple[str, str]]]:
    """``{module: package modules it imports at module level}`` (including those under
    ``if TYPE_CHECKING:``) and the set of function-local ``(module, imported)`` pairs."""
    found = modules()
    known = set(found)
    graph: dict[str, set[str]] = {name: set() for name in found}
    local: set[tuple[str, str]] = set()
    for name, path in found.items():
        tree = ast.parse(path.read_text())
        top = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                for inner in ast.walk(node):
                    if isinstance(inner, ast.Import | ast.ImportFrom):
                        top.add(id(inner))
                        local |= {(name, t) for t in imported(name, path, inner, known)}
        for node in ast.walk(tree):
            if isinstance(node, ast.Import | ast.ImportFrom) and id(node) not in top:
                graph[name] |= imported(name, path, node, known) - {name}
    return graph, local


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle of ``graph`` as ``[a, b, ..., a]``, or None (depth-first search)."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return path[path.index(nxt) :] + [nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        path.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def test_find_cycle_finds_one():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set(), "c": {"a", "b"}}) is None


def test_relative_imports_resolve_to_package_modules():
    graph, _ = import_graph()
    assert "minipruner.experiments.records" in graph["minipruner.book.runner"]
    assert "minipruner.book.chapters" in graph["minipruner.book.chapters.magnitude"]
    assert "minipruner.experiments.tables" in graph["minipruner.book.claims"]


def test_no_import_circle_between_package_modules():
    graph, _ = import_graph()
    cycle = find_cycle(graph)
    assert cycle is None, "import circle: " + " -> ".join(cycle)


def test_every_function_local_import_has_a_reason():
    _, local = import_graph()
    unexplained = sorted(local - set(LOCAL_IMPORTS))
    assert not unexplained, f"function-local imports without a listed reason: {unexplained}"


def test_no_function_local_import_dodges_a_circle():
    # each remaining function-local import, moved to the top of its module, closes no circle
    graph, local = import_graph()
    for module, target in sorted(local):
        moved = {name: set(edges) for name, edges in graph.items()}
        moved[module].add(target)
        cycle = find_cycle(moved)
        assert cycle is None, f"{module} -> {target} at module level: " + " -> ".join(cycle)


# The package's four layers, bottom first; a module may import its own layer and those below.
LAYERS = ("core", "methods", "experiments", "book")


def layer(module: str) -> int | None:
    """The index in LAYERS of a package module's layer; None for the top (``minipruner``,
    ``minipruner.__main__``), which may import anything."""
    parts = module.split(".")
    return LAYERS.index(parts[1]) if len(parts) > 1 and parts[1] in LAYERS else None


def test_every_module_but_the_entry_points_sits_in_a_layer():
    loose = [m for m in modules() if layer(m) is None]
    assert sorted(loose) == ["minipruner", "minipruner.__main__"]


def test_layers_import_only_their_own_and_those_below():
    graph, local = import_graph()
    edges = {(a, b) for a, targets in graph.items() for b in targets} | local
    upward = sorted(
        f"{a} -> {b}"
        for a, b in edges
        if layer(a) is not None and layer(b) is not None and layer(b) > layer(a)
    )
    assert not upward, "imports from a layer above: " + ", ".join(upward)


def test_layer_check_sees_an_upward_import():
    assert layer("minipruner.core.masks") < layer("minipruner.book.claims")
    assert layer("minipruner.methods") == LAYERS.index("methods")


def test_every_relative_import_names_a_package_module():
    # an import inside a function runs only when called: resolve every one now (a module moved
    # between packages keeps its relative imports' dots otherwise)
    found = modules()
    known = set(found)
    broken = []
    for name, path in found.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.level:
                parts = package.split(".")
                if node.level > len(parts):
                    broken.append(
                        f"{name}: {'.' * node.level}{node.module or ''} (beyond the package)"
                    )
                    continue
                base = ".".join(parts[: len(parts) - node.level + 1])
                target = f"{base}.{node.module}" if node.module else base
                if target not in known and not all(
                    f"{target}.{a.name}" in known for a in node.names
                ):
                    broken.append(f"{name}: {'.' * node.level}{node.module or ''} -> {target}")
    assert not broken, broken
