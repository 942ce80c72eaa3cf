"""The import layers of docs/ARCHITECTURE.md, enforced: a module may import only from its own unit
and from units in lower layers, lazy imports inside functions included (they run all the same)."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# Lowest first. A unit is a package or a top-level module of core; workbench is one unit on top.
LAYERS: list[set[str]] = [
    {"core", "core.errors"},
    {"core.params", "core.paths", "core.protocol", "core.logtail", "core.published", "core.pooling"},
    {"core.models", "core.layers", "core.tasks", "core.state", "core.store"},
    {"core.artifacts"},
    {"core.measure"},
    {"core.backends"},
    {"core.steps"},
    {"core.recipe"},
    {"core.run", "core.analysis"},
    {"core.cli"},
    {"workbench"},
]
# What the window may use of the engine: declarations, recipes, the store and the Qt-free client
# session; never what computes (torch lives there) nor the runner.
WORKBENCH_MAY_IMPORT = {"core", "core.errors", "core.params", "core.paths", "core.protocol", "core.logtail", "core.models",
                        "core.tasks", "core.state", "core.store", "core.steps", "core.recipe", "core.run.session",
                        "core.published", "core.analysis.client", "core.analysis.mixed", "core.analysis.disagreements"}
# The one exception: a frozen bundle's single executable hands `--worker` to the worker, before any Qt.
WORKBENCH_EXCEPTIONS = {("workbench.app", "core.run.worker")}

LEVEL = {unit: i for i, units in enumerate(LAYERS) for unit in units}


def unit_of(module: str) -> str | None:
    parts = module.split(".")
    if parts[0] == "workbench":
        return "workbench"
    if parts[0] != "core":
        return None
    return "core" if len(parts) == 1 else f"core.{parts[1]}"


def _imports(path: Path) -> list[str]:
    names: list[str] = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.append(node.module)
    return names


def violations() -> list[str]:
    found = []
    for path in sorted([*ROOT.glob("core/**/*.py"), *ROOT.glob("workbench/**/*.py")]):
        module = ".".join(path.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")
        here = unit_of(module)
        assert here in LEVEL, f"{module} belongs to no layer: add its unit to LAYERS"
        for name in _imports(path):
            there = unit_of(name)
            if there is None or there == here:
                continue
            if here == "workbench":
                allowed = there in WORKBENCH_MAY_IMPORT or any(
                    name == m or name.startswith(m + ".") for m in WORKBENCH_MAY_IMPORT if m.count(".") > 1
                ) or (module, name) in WORKBENCH_EXCEPTIONS
            else:
                allowed = LEVEL[there] < LEVEL[here]
            if not allowed:
                found.append(f"{module} imports {name} ({there}, layer {LEVEL.get(there)}; {here} is layer {LEVEL[here]})")
    return found


def test_no_import_runs_up_the_layers() -> None:
    assert violations() == []


def test_the_check_catches_an_upward_import(tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """A store module importing the runner must be reported (the check is not vacuous)."""
    fake = tmp_path / "core" / "store"
    fake.mkdir(parents=True)
    (fake / "bad.py").write_text("def f():\n    from core.run.runner import run_recipe\n")
    (tmp_path / "workbench").mkdir()
    (tmp_path / "workbench" / "w.py").write_text("import core.measure\n")
    monkeypatch.setattr(__import__(__name__), "ROOT", tmp_path)
    assert violations() == [
        "core.store.bad imports core.run.runner (core.run, layer 8; core.store is layer 2)",
        "workbench.w imports core.measure (core.measure, layer 4; workbench is layer 10)",
    ]
