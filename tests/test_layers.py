"""The package's imports point down the layers and form no cycle, counting imports inside functions."""
import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = {"starbench": ROOT / "starbench", "starbench.baselines": ROOT / "baselines",
            "starbench.protocols": ROOT / "protocols"}

# Top to bottom: a module may import from its own layer and the layers below, never from one above. The model
# interface (models.base) is the floor the Trainer and every model stand on; concrete models, the weight-file
# formats and the metrics sit above the Trainer (it is handed a built model and never imports a model class).
LAYERS = [
    ("commands", ["starbench.cli", "starbench.__main__", "starbench.api", "starbench.translate", "starbench"]),
    ("protocols", ["starbench.protocols"]),
    ("evaluate", ["starbench.evaluate"]),
    ("models", ["starbench.loading", "starbench.models", "starbench.baselines", "starbench.metrics"]),
    ("train", ["starbench.train"]),
    ("interface", ["starbench.models.base", "starbench.models.classes"]),
    ("data", ["starbench.data"]),
    ("base", ["starbench.config", "starbench.registry", "starbench.errors", "starbench.files", "starbench.locks",
              "starbench.progress", "starbench.report", "starbench.paper", "starbench.devices"]),
]


def modules() -> dict[str, Path]:
    out = {}
    for package, folder in PACKAGES.items():
        for path in folder.rglob("*.py"):
            parts = [p for p in path.relative_to(folder).with_suffix("").parts if p != "__init__"]
            out[".".join([package, *parts])] = path
    return out


def layer_of(module: str) -> int:
    """The layer of the longest prefix that names ``module`` (models.base before models)."""
    best, rank = -1, None
    for i, (_, prefixes) in enumerate(LAYERS):
        for prefix in prefixes:
            inside = module.startswith(prefix + ".") and prefix != "starbench"  # the root package is its own
            if (module == prefix or inside) and len(prefix) > best:
                best, rank = len(prefix), i
    assert rank is not None, f"{module} belongs to no layer: add it to LAYERS"
    return rank


def imports(module: str, path: Path, known: set[str]) -> list[tuple[str, int, bool]]:
    """(imported starbench module, line, inside a function) for every import in the file."""
    tree = ast.parse(path.read_text())
    inner = {id(n) for f in ast.walk(tree) if isinstance(f, (ast.FunctionDef, ast.AsyncFunctionDef))
             for n in ast.walk(f) if isinstance(n, (ast.Import, ast.ImportFrom))}
    package = module if path.name == "__init__.py" else module.rsplit(".", 1)[0]
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                base = ".".join(parts[:len(parts) - node.level + 1] + ([base] if base else []))
            names = [f"{base}.{a.name}" if f"{base}.{a.name}" in known else base for a in node.names]
        else:
            continue
        for name in names:
            if name.startswith("starbench"):
                while name not in known and "." in name:
                    name = name.rsplit(".", 1)[0]
                out.append((name, node.lineno, id(node) in inner))
    return out


def test_imports_point_down_and_form_no_cycle():
    mods = modules()
    known = set(mods)
    graph, upward = {}, []
    for module, path in sorted(mods.items()):
        edges = imports(module, path, known)
        graph[module] = {target for target, _, _ in edges if target != module}
        for target, line, inside in edges:
            if target != module and layer_of(target) < layer_of(module):
                where = "inside a function" if inside else "at module level"
                upward.append(f"{path.relative_to(ROOT)}:{line} ({LAYERS[layer_of(module)][0]}) imports {target} "
                              f"({LAYERS[layer_of(target)][0]}) {where}")
    assert not upward, "upward imports:\n" + "\n".join(upward)
    # no cycle: depth-first search over every import, module level and inside functions alike
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(m: str) -> None:
        state[m] = 1
        stack.append(m)
        for t in sorted(graph.get(m, ())):
            if state.get(t) == 1:
                cycle = stack[stack.index(t):] + [t]
                raise AssertionError("import cycle: " + " -> ".join(cycle))
            if t in graph and not state.get(t):
                visit(t)
        stack.pop()
        state[m] = 2

    for m in sorted(graph):
        if not state.get(m):
            visit(m)


def test_imports_inside_functions_are_few_and_said_why():
    """An import inside a function is an optional dependency or a deliberate lazy load of a heavy library, with a
    comment on its line saying which ("# optional: ..." or "# lazy: ...")."""
    unexplained = []
    for module, path in sorted(modules().items()):
        text = path.read_text()
        lines = text.splitlines()
        tree = ast.parse(text)
        for fn in ast.walk(tree):
            if not isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef)):
                continue
            for node in ast.walk(fn):
                if isinstance(node, (ast.Import, ast.ImportFrom)) and not any(
                        tag in lines[node.lineno - 1] for tag in ("# lazy:", "# optional:")):
                    unexplained.append(f"{path.relative_to(ROOT)}:{node.lineno}: {lines[node.lineno - 1].strip()}")
    assert not unexplained, "imports inside functions without a reason:\n" + "\n".join(sorted(set(unexplained)))
