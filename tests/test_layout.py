"""The direction of imports, read from every module's source: the core packages never import
flows or prefect, miners and annotators do not import each other, only flows/tracked imports
prefect; and the quick commands start without the heavy libraries."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

from warehouse.db import open_warehouse

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("flows", "miners", "annotators", "warehouse")


def _modules() -> list[Path]:
    return sorted(p for package in PACKAGES for p in (ROOT / package).rglob("*.py"))


def _imports(path: Path) -> set[str]:
    """Top-level names of every module path imports, at any depth of the file."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module)
    return names


def _first(name: str) -> str:
    return name.split(".")[0]


def test_every_module_imports_in_one_direction() -> None:
    """miners, annotators and warehouse never import flows or prefect; miners and annotators
    never import each other; miners and annotators never import warehouse; only
    flows/tracked imports prefect; the jobs never import the CLI or the tracked flows."""
    forbidden = {
        "miners": {"flows", "prefect", "annotators", "warehouse"},
        "annotators": {"flows", "prefect", "miners", "warehouse"},
        "warehouse": {"flows", "prefect"},
    }
    broken = []
    modules = _modules()
    assert len(modules) > 40  # the walk saw the whole tree
    for path in modules:
        rel = path.relative_to(ROOT)
        imported = _imports(path)
        package = rel.parts[0]
        bad = {n for n in imported if _first(n) in forbidden.get(package, set())}
        if package == "flows" and rel.parts[1] != "tracked":
            bad |= {n for n in imported if _first(n) in ("prefect", "prefect_dask")}
        if rel.parts[:2] == ("flows", "jobs"):
            bad |= {n for n in imported if n.startswith(("flows.tracked", "flows.cli",
                                                         "flows.output", "flows.progress"))}
        broken += [f"{rel} imports {n}" for n in sorted(bad)]
    assert broken == []


def test_core_packages_do_not_import_prefect() -> None:
    """Importing every module of miners, annotators, warehouse and flows.jobs loads neither
    prefect nor the CLI."""
    names = [".".join(p.relative_to(ROOT).with_suffix("").parts) for p in _modules()
             if p.parts[-2] != "tracked" and p.stem not in ("cli", "__init__")]
    code = ("import importlib, sys\n"
            f"for name in {names!r}:\n    importlib.import_module(name)\n"
            "print(sorted(m for m in sys.modules if m.split('.')[0] == 'prefect'"
            " or m in ('flows.cli', 'flows.tracked')))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, cwd=ROOT)
    assert out.stdout.strip() == "[]"


@pytest.mark.parametrize("args", [["--help"], ["sql", "SELECT 1"], ["stats"]])
def test_quick_commands_import_nothing_heavy(args: list[str], tmp_path: Path) -> None:
    """--help, sql and stats load none of prefect, pyarrow, pandas, openai, tree-sitter,
    datasets or httpx."""
    warehouse = tmp_path / "w.duckdb"
    code = ("import sys\nfrom flows.cli import app\n"
            f"sys.argv = ['racemine', *{args!r}, *(['-w', {str(warehouse)!r}] "
            f"if {args!r} != ['--help'] else [])]\n"
            "try:\n    app()\nexcept SystemExit:\n    pass\n"
            "heavy = ('prefect', 'pyarrow', 'pandas', 'openai', 'tree_sitter', "
            "'tree_sitter_language_pack', 'datasets', 'httpx')\n"
            "print(sorted({m.split('.')[0] for m in sys.modules} & set(heavy)), "
            "file=sys.stderr)\n")
    with open_warehouse(warehouse):  # an empty warehouse to query
        pass
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         cwd=ROOT)
    assert out.stderr.strip().splitlines()[-1] == "[]", out.stderr
