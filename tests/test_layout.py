"""The direction of imports: the core packages never pull in prefect or flows."""

from __future__ import annotations

import subprocess
import sys


def test_core_packages_do_not_import_prefect() -> None:
    """Importing miners, annotators and warehouse loads neither prefect nor flows."""
    code = ("import sys\n"
            "import miners.classify, miners.extract, miners.git, annotators.heuristic\n"
            "import warehouse.db, warehouse.save, warehouse.queries, warehouse.export\n"
            "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('prefect', 'flows'))\n"
            "print(bad)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == "[]"


def test_quick_commands_do_not_import_prefect() -> None:
    """The CLI module (sql, stats, export) starts without paying for prefect."""
    code = "import sys, flows.cli\nprint('prefect' in sys.modules)\n"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == "False"
