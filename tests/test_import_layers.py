"""nanochat_core's and nanochat_pipeline's imports only go down their floors, and no module imports
itself in a circle.

Each package lists its floors, top to bottom; a part (a subpackage, or a loose module such as
nanochat_pipeline.checks) may import its own modules and any part on a lower floor, never one on
its own floor or above. Function-level imports count too: a lazy import upward is still upward.
"""
from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

import pytest

import nanochat_core
import nanochat_pipeline


@dataclass(frozen=True)
class Floors:
    root: Path               # the package's folder
    floors: list[set[str]]   # its parts, top floor first

    @property
    def name(self) -> str:
        return self.root.name


CORE = Floors(Path(nanochat_core.__file__).parent, [
    {"cli"},
    {"train"},
    {"evaluation", "synthetic", "scaling", "report"},
    {"data", "chat", "tasks"},
    {"model", "tokenizer", "execution"},
    {"common"},
])
PIPELINE = Floors(Path(nanochat_pipeline.__file__).parent, [
    {"__main__"},                              # `python -m nanochat_pipeline`: calls cli's main
    {"cli"},                                   # the commands; cli may import definitions (lazily)
    {"definitions"},                           # build_definitions + defs: what workspace.yaml loads
    {"assets", "sensors", "schedules"},        # the Dagster objects
    {"checks", "staleness", "partitions", "ladder"},  # what those objects are built from
    {"launch", "children"},                    # where a training child runs; the child itself
    {"presets", "instance", "pictures"},       # the preset files, DAGSTER_HOME, the plots
])
MAX_LOOSE_PIPELINE_MODULES = 10  # issue 20: nanochat_pipeline's top level holds at most this many .py files


def module_name(pkg: Floors, path: Path) -> str:
    parts = path.relative_to(pkg.root.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_modules(pkg: Floors, path: Path, top_level_only: bool = False) -> set[str]:
    """Every module of `pkg` that `path` imports (function-level imports too, unless top_level_only)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found = set()
    for node in (tree.body if top_level_only else ast.walk(tree)):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.split(".")[0] == pkg.name)
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == pkg.name:
            assert node.level == 0, f"{path}: relative import"
            # `from pkg import module` imports the module; `from pkg import name`, the package
            folder = pkg.root.parent / node.module.replace(".", "/")
            for a in node.names:
                is_module = (folder / f"{a.name}.py").exists() or (folder / a.name / "__init__.py").exists()
                found.add(f"{node.module}.{a.name}" if is_module else node.module)
    return found


def graph(pkg: Floors) -> dict[str, set[str]]:
    return {module_name(pkg, p): imported_modules(pkg, p) for p in sorted(pkg.root.rglob("*.py"))}


def part_of(module: str) -> str:
    """nanochat_pipeline.assets.chat -> assets; nanochat_pipeline.checks -> checks; the bare package -> ''."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def floor_of(pkg: Floors, part: str) -> int:
    for i, floor in enumerate(pkg.floors):
        if part in floor:
            return i
    raise AssertionError(f"{pkg.name}.{part} is on no floor: add it to the floors in {Path(__file__).name}")


def upward_imports(pkg: Floors, edges: dict[str, set[str]]) -> list[str]:
    bad = []
    for src, targets in edges.items():
        for dst in targets:
            a, b = part_of(src), part_of(dst)
            if not b:  # the bare package holds nothing
                bad.append(f"{src} imports {pkg.name} itself")
            elif a and a != b and floor_of(pkg, b) <= floor_of(pkg, a):
                bad.append(f"{src} (floor {floor_of(pkg, a)}) imports {dst} (floor {floor_of(pkg, b)})")
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


def parts_on_disk(pkg: Floors) -> set[str]:
    packages = {p.name for p in pkg.root.iterdir() if (p / "__init__.py").exists()}
    modules = {p.stem for p in pkg.root.glob("*.py")} - {"__init__"}
    return packages | modules


BOTH = pytest.mark.parametrize("pkg", [CORE, PIPELINE], ids=lambda p: p.name)


@BOTH
def test_every_part_has_a_floor(pkg):
    assert parts_on_disk(pkg) == set().union(*pkg.floors)


def test_core_keeps_its_modules_in_packages():
    assert [p.name for p in CORE.root.glob("*.py")] == ["__init__.py"], "modules belong in a package"


def test_pipeline_top_level_is_small():
    loose = sorted(p.name for p in PIPELINE.root.glob("*.py"))
    assert len(loose) <= MAX_LOOSE_PIPELINE_MODULES, loose


@BOTH
def test_imports_only_go_down(pkg):
    assert upward_imports(pkg, graph(pkg)) == []


@BOTH
def test_no_import_cycles(pkg):
    assert cycles(graph(pkg)) == []


def test_core_never_imports_the_pipeline_or_dagster():
    for path in CORE.root.rglob("*.py"):
        text = path.read_text(encoding="utf-8")
        assert "import dagster" not in text and "nanochat_pipeline" not in text, path


def test_no_asset_module_imports_another():
    """Assets depend on each other by AssetKey only; what two assets share lives a floor down."""
    edges = graph(PIPELINE)
    bad = [f"{src} imports {dst}" for src, targets in edges.items() if src.startswith("nanochat_pipeline.assets.")
           for dst in targets if dst.startswith("nanochat_pipeline.assets.") and dst != src]
    assert bad == []


def test_only_the_commands_import_definitions_and_only_when_run():
    """Importing definitions builds the active preset's Definitions: the commands do it after they
    have set DAGSTER_HOME and NANOCHAT_PRESET, never at their own import."""
    edges = graph(PIPELINE)
    importers = {src for src, targets in edges.items() if "nanochat_pipeline.definitions" in targets}
    assert importers and all(part_of(src) == "cli" for src in importers), importers
    at_load = [p for p in (PIPELINE.root / "cli").rglob("*.py")
               if "nanochat_pipeline.definitions" in imported_modules(PIPELINE, p, top_level_only=True)]
    assert at_load == []


def test_launch_reads_only_the_launch_table_of_the_presets():
    """launch/ runs a child wherever the [launch] table says: it takes that table's type, never the preset loading."""
    edges = graph(PIPELINE)
    reads = {dst for src, targets in edges.items() if part_of(src) == "launch" for dst in targets
             if part_of(dst) in ("presets", "assets")}
    assert reads == {"nanochat_pipeline.presets.launch_table"}


def test_the_checks_fail_on_an_upward_import_and_a_circle():
    edges = graph(CORE)
    edges["nanochat_core.model.gpt"] = edges["nanochat_core.model.gpt"] | {"nanochat_core.train.trainer_loop"}
    assert any("model.gpt" in line for line in upward_imports(CORE, edges))
    edges = {"nanochat_core.chat.a": {"nanochat_core.chat.b"}, "nanochat_core.chat.b": {"nanochat_core.chat.a"}}
    assert cycles(edges) == [["nanochat_core.chat.a", "nanochat_core.chat.b"]]
    with pytest.raises(AssertionError, match="on no floor"):
        upward_imports(CORE, {"nanochat_core.nowhere.x": {"nanochat_core.common.settings"}})


def test_the_pipeline_checks_fail_on_an_upward_import_and_a_circle(tmp_path):
    # the issue's own examples: presets importing launch, and ladder <-> definitions
    edges = graph(PIPELINE)
    edges["nanochat_pipeline.presets"] = edges["nanochat_pipeline.presets"] | {"nanochat_pipeline.launch.runner"}
    assert any(line.startswith("nanochat_pipeline.presets (floor 6) imports nanochat_pipeline.launch.runner")
               for line in upward_imports(PIPELINE, edges))
    edges = graph(PIPELINE)  # definitions -> sensors -> ladder already; ladder -> definitions closes it
    edges["nanochat_pipeline.ladder"] = edges["nanochat_pipeline.ladder"] | {"nanochat_pipeline.definitions"}
    assert cycles(edges) == [["nanochat_pipeline.definitions", "nanochat_pipeline.ladder", "nanochat_pipeline.sensors"]]
    # an asset module importing another is on the same floor: upward for the floor check too
    edges = {"nanochat_pipeline.assets.chat": {"nanochat_pipeline.sensors"}}
    assert upward_imports(PIPELINE, edges) == ["nanochat_pipeline.assets.chat (floor 3) imports nanochat_pipeline.sensors "
                                               "(floor 3)"]
    # a real file: the walker reads a lazy (function-level) import from disk
    fake = Floors(tmp_path / "nanochat_pipeline", PIPELINE.floors)
    (fake.root / "presets").mkdir(parents=True)
    (fake.root / "__init__.py").write_text("")
    (fake.root / "presets" / "__init__.py").write_text("def f():\n    from nanochat_pipeline import definitions\n")
    (fake.root / "definitions.py").write_text("")
    assert upward_imports(fake, graph(fake)) == [
        "nanochat_pipeline.presets (floor 6) imports nanochat_pipeline.definitions (floor 2)"]
    # a command importing definitions at load is told apart from one importing it when run
    (fake.root / "cli").mkdir()
    (fake.root / "cli" / "at_load.py").write_text("from nanochat_pipeline import definitions\n")
    (fake.root / "cli" / "when_run.py").write_text("def main():\n    from nanochat_pipeline import definitions\n")
    assert imported_modules(fake, fake.root / "cli" / "at_load.py", top_level_only=True) == {
        "nanochat_pipeline.definitions"}
    assert imported_modules(fake, fake.root / "cli" / "when_run.py", top_level_only=True) == set()
