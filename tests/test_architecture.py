"""The package's import graph is layered (docs/architecture.md, "Layers"): a module imports only
its own layer or those below, lazy imports inside functions included, so there is no cycle."""

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src" / "igt"

# Bottom up. A module not listed belongs to the application layer on top (cli, api, run,
# reproduce, tune, results, bench, ...), which may import anything.
LAYERS = (
    ("igt.errors", "igt.registry", "igt.version", "igt.fileio", "igt.runtime"),
    ("igt.config",),
    ("igt.molgraph", "igt.data"),
    ("igt.nn",),
    ("igt.methods",),
    ("igt.train",),
    ("igt.predict",),
    ("igt.explain",),
)


def _modules() -> dict[str, Path]:
    out = {}
    for path in SRC.rglob("*.py"):
        name = ".".join(path.relative_to(SRC.parent).with_suffix("").parts)
        out[name.removesuffix(".__init__")] = path
    return out


def _imports(path: Path, modules: dict[str, Path]) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "igt":
            found |= {f"{node.module}.{a.name}" if f"{node.module}.{a.name}" in modules else node.module
                      for a in node.names}
        elif isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.split(".")[0] == "igt"}
    return {m for m in found if m in modules}


def _layer(module: str) -> int:
    for index in reversed(range(len(LAYERS))):
        if any(module == p or module.startswith(p + ".") for p in LAYERS[index]):
            return index
    return len(LAYERS)


def test_no_module_imports_a_layer_above_its_own():
    modules = _modules()
    upward = sorted(f"{name} -> {dep}" for name, path in modules.items() for dep in _imports(path, modules)
                    if _layer(dep) > _layer(name))
    assert upward == []


def test_the_layers_have_no_import_cycle():
    modules = _modules()
    graph = {name: _imports(path, modules) - {name} for name, path in modules.items()}
    # Within a layer edges may go either way; a cycle there is what this catches (depth-first search).
    state: dict[str, int] = {}

    def visit(name: str, trail: list[str]) -> None:
        state[name] = 1
        for dep in sorted(graph[name]):
            if state.get(dep) == 1:
                raise AssertionError("import cycle: " + " -> ".join(trail[trail.index(dep):] + [name, dep])
                                     if dep in trail else f"import cycle through {name} -> {dep}")
            if dep not in state:
                visit(dep, trail + [name])
        state[name] = 2

    for name in sorted(graph):
        if name not in state:
            visit(name, [])
