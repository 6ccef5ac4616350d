"""The import graph of the package: lower layers never import upper ones, and the package graph has no cycle.

Imports are read with ``ast`` (top-level and inside functions alike), so a lazy import counts too.
"""
import ast
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "cream"
UPPER = ("cream.training", "cream.stages", "cream.report", "cream.pipeline", "cream.cli")
# module (or package) prefix -> what it must not import
RULES = {
    "cream.method": UPPER,
    "cream.models": UPPER,
    "cream.data": UPPER,
    "cream.records": UPPER,
    "cream.distributed": UPPER,
    "cream.training": ("cream.report", "cream.stages", "cream.pipeline", "cream.cli"),
    "cream.stages.evaluate": ("cream.report",),
}


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(path: Path) -> set[str]:
    """Every ``cream...`` module ``path`` imports (``from cream import x`` gives ``cream.x``)."""
    out = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names if a.name.startswith("cream")}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and (node.module or "").startswith("cream"):
            out |= {f"{node.module}.{a.name}" if node.module == "cream" else node.module for a in node.names}
    return out


GRAPH = {module_name(p): imports(p) for p in sorted(PACKAGE.rglob("*.py"))}


def under(name: str, prefix: str) -> bool:
    return name == prefix or name.startswith(prefix + ".")


def test_the_graph_was_read():
    assert "cream.method.losses" in GRAPH and "cream.distributed" in GRAPH["cream.models.scoring"]


@pytest.mark.parametrize("prefix", list(RULES))
def test_no_upward_import(prefix):
    bad = sorted(f"{mod} imports {dep}" for mod, deps in GRAPH.items() if under(mod, prefix)
                 for dep in deps if any(under(dep, up) for up in RULES[prefix]))
    assert not bad, "\n".join(bad)


def unit(name: str) -> str:
    """The package or top-level module a module belongs to: ``cream.training.trainer`` -> ``cream.training``."""
    return ".".join(name.split(".")[:2])


def find_cycle(edges: dict[str, set[str]]) -> list[str] | None:
    """A cycle of ``edges`` (depth-first search), or None."""
    done: set[str] = set()

    def visit(node: str, path: list[str]) -> list[str] | None:
        if node in path:
            return path[path.index(node):] + [node]
        if node in done:
            return None
        for nxt in sorted(edges.get(node, ())):
            if cycle := visit(nxt, path + [node]):
                return cycle
        done.add(node)
        return None

    return next((c for n in sorted(edges) if (c := visit(n, []))), None)


def test_find_cycle():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b", "c"}, "b": {"c"}, "c": set()}) is None


def test_no_cycle_between_packages():
    edges: dict[str, set[str]] = {}
    for mod, deps in GRAPH.items():
        edges.setdefault(unit(mod), set()).update(unit(d) for d in deps if unit(d) not in (unit(mod), "cream"))
    cycle = find_cycle(edges)
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])


def test_the_methods_maths_and_the_records_import_without_hydra_or_torch_training():
    code = ("import sys, cream.method.losses, cream.method.ranking, cream.method.regularizers, cream.records; "
            "bad = [m for m in ('hydra', 'lightning', 'cream.config', 'cream.data') if m in sys.modules]; "
            "assert not bad, bad")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_the_records_import_without_torch():
    code = "import sys, cream.records; assert 'torch' not in sys.modules and 'omegaconf' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_the_console_scripts_module_imports_without_torch_lightning_or_matplotlib():
    # cream-table, every --help and every command line refused at composition start without them (0.1x the CPU
    # time: experiments/perf/startup.py); the scripts that train, evaluate or plot import them where they need them
    code = ("import sys, cream.cli; bad = [m for m in ('torch', 'transformers', 'lightning', 'matplotlib') "
            "if m in sys.modules]; assert not bad, bad")
    subprocess.run([sys.executable, "-c", code], check=True)
