"""The package's shape: imports only point down the layers, no cycles, a pure core, short functions."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "smart_sorter"
# Lower layers never import higher ones; a module may import its own layer.
LAYERS = {
    "_version": 0,
    "errors": 0,
    "options": 1,
    "core": 2,
    "storage": 3,
    "pipeline": 4,
    "runs": 5,
    "validation": 6,
    "cli": 7,
    "notebook": 7,
    "ui": 8,
    "review": 8,
    "__init__": 9,
    "__main__": 9,
}
# The core is pure: arrays, labels and options in, dataclasses out. No files, no model, no screen.
IMPURE = {"os", "shutil", "sqlite3", "subprocess", "torch", "transformers", "PIL", "ipywidgets", "tqdm", "pandas"}
LONGEST_FUNCTION = 60
WIDGET_BUILDERS = {("notebook/form.py", "__init__"), ("notebook/review.py", "__init__")}


def modules() -> dict[str, Path]:
    found = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" and len(parts) > 1 else parts)
        found[name] = path
    return found


def imports_of(name: str, path: Path) -> list[tuple[str, int]]:
    """Package modules imported by `name` (resolved), with the line of each import."""
    package = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.level:
            base = package[: len(package) - node.level + 1]
            target = ".".join([*base, *(node.module.split(".") if node.module else [])])
            names = [alias.name for alias in node.names]
            for imported in names if not node.module else [None]:
                full = f"{target}.{imported}" if imported and target else (target or imported)
                found.append((full, node.lineno))
        elif isinstance(node, (ast.Import, ast.ImportFrom)) and not getattr(node, "level", 0):
            module = node.module if isinstance(node, ast.ImportFrom) else None
            for alias in node.names:
                full = module or alias.name
                if full.startswith("smart_sorter"):
                    found.append((full.removeprefix("smart_sorter").lstrip("."), node.lineno))
    known = modules()
    resolved = []
    for target, line in found:
        while target and target not in known:
            target = target.rpartition(".")[0]
        resolved.append((target or "__init__", line))
    return resolved


def layer(name: str) -> int:
    return LAYERS[name.split(".")[0]]


def test_every_module_has_a_layer():
    assert all(name.split(".")[0] in LAYERS for name in modules())


def test_imports_only_point_down_the_layers():
    upward = [
        f"{name} (line {line}) imports {target}"
        for name, path in modules().items()
        for target, line in imports_of(name, path)
        if layer(target) > layer(name)
    ]
    assert upward == []


def test_there_is_no_import_cycle():
    graph = {
        name: {target for target, _ in imports_of(name, path) if target != name} for name, path in modules().items()
    }
    graph = {
        name: {t for t in targets if not name.startswith(t + ".") and t != "__init__"}
        for name, targets in graph.items()
    }
    cycles, state = [], {}

    def visit(node: str, trail: list[str]) -> None:
        state[node] = "open"
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == "open":
                cycles.append(trail[trail.index(nxt) :] + [nxt])
            elif nxt not in state:
                visit(nxt, [*trail, nxt])
        state[node] = "done"

    for name in sorted(graph):
        if name not in state:
            visit(name, [name])
    assert cycles == []


def test_the_core_does_no_input_or_output():
    found = []
    for name, path in modules().items():
        if not name.startswith("core"):
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, (ast.Import, ast.ImportFrom)) and not getattr(node, "level", 0):
                names = [node.module] if isinstance(node, ast.ImportFrom) else [a.name for a in node.names]
                found += [f"{name}: {n}" for n in names if n and n.split(".")[0] in IMPURE]
            if isinstance(node, ast.Call) and getattr(node.func, "id", "") in ("open", "print", "input"):
                found.append(f"{name}: {node.func.id}() on line {node.lineno}")
    assert found == []


def test_no_function_is_longer_than_a_screen():
    long = []
    for path in PACKAGE.rglob("*.py"):
        relative = path.relative_to(PACKAGE).as_posix()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                length = node.end_lineno - node.lineno + 1
                if length > LONGEST_FUNCTION and (relative, node.name) not in WIDGET_BUILDERS:
                    long.append(f"{relative}:{node.lineno} {node.name} ({length} lines)")
    assert long == []


def test_the_command_line_help_imports_no_heavy_package():
    import subprocess
    import sys

    code = (
        "import sys; from smart_sorter.cli import main\n"
        "try:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
        "heavy = sorted(m for m in ('torch', 'transformers', 'PIL', 'pandas', 'ipywidgets') if m in sys.modules)\n"
        "print('HEAVY', heavy)"
    )
    output = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert "HEAVY []" in output
