"""nanochat_core's imports only go down its layers, and no module imports itself in a circle.

The layers, top to bottom (a package may import its own modules and any package in a lower layer):
the command-line tools; train; the workflows it builds on; the building blocks; the shared bottom.
"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

import nanochat_core

LAYERS = [
    {"cli"},
    {"train"},
    {"evaluation", "synthetic", "scaling", "report"},
    {"data", "chat", "tasks"},
    {"model", "tokenizer", "execution"},
    {"common"},
]
ROOT = Path(nanochat_core.__file__).parent


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_modules(path: Path) -> set[str]:
    """Every nanochat_core module `path` imports (function-level imports too)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith("nanochat_core"))
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("nanochat_core"):
            assert node.level == 0, f"{path}: relative import"
            found.add(node.module)
            # `from pkg import module` imports the module, not just the package
            found.update(f"{node.module}.{a.name}" for a in node.names
                         if (ROOT.parent / node.module.replace(".", "/") / f"{a.name}.py").exists())
    return found


def graph(root: Path = ROOT) -> dict[str, set[str]]:
    return {module_name(p): imported_modules(p) for p in sorted(root.rglob("*.py"))}


def package_of(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def layer_of(package: str) -> int:
    for i, layer in enumerate(LAYERS):
        if package in layer:
            return i
    raise AssertionError(f"package nanochat_core.{package} is in no layer: add it to LAYERS")


def upward_imports(edges: dict[str, set[str]]) -> list[str]:
    bad = []
    for src, targets in edges.items():
        for dst in targets:
            a, b = package_of(src), package_of(dst)
            if not b:  # the bare package nanochat_core holds nothing
                bad.append(f"{src} imports nanochat_core itself")
            elif a and a != b and layer_of(b) <= layer_of(a):
                bad.append(f"{src} (layer {layer_of(a)}) imports {dst} (layer {layer_of(b)})")
    return bad


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan), plus self-imports."""
    index, low, stack, on_stack, found = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in edges.get(v, ()):
            if w not in edges:
                continue
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1 or v in edges.get(v, ()):
                found.append(sorted(component))

    for v in edges:
        if v not in index:
            visit(v)
    return found


def test_every_package_has_a_layer():
    packages = {p.name for p in ROOT.iterdir() if (p / "__init__.py").exists()}
    assert packages == set().union(*LAYERS)
    assert [p.name for p in ROOT.glob("*.py")] == ["__init__.py"], "modules belong in a package"


def test_imports_only_go_down():
    assert upward_imports(graph()) == []


def test_no_import_cycles():
    assert cycles(graph()) == []


def test_core_never_imports_the_pipeline_or_dagster():
    for path in ROOT.rglob("*.py"):
        text = path.read_text(encoding="utf-8")
        assert "import dagster" not in text and "nanochat_pipeline" not in text, path


def test_the_checks_fail_on_an_upward_import_and_a_circle(tmp_path):
    edges = graph()
    edges["nanochat_core.model.gpt"] = edges["nanochat_core.model.gpt"] | {"nanochat_core.train.trainer_loop"}
    assert any("model.gpt" in line for line in upward_imports(edges))
    edges = {"nanochat_core.chat.a": {"nanochat_core.chat.b"}, "nanochat_core.chat.b": {"nanochat_core.chat.a"}}
    assert cycles(edges) == [["nanochat_core.chat.a", "nanochat_core.chat.b"]]
    with pytest.raises(AssertionError, match="in no layer"):
        upward_imports({"nanochat_core.nowhere.x": {"nanochat_core.common.settings"}})
