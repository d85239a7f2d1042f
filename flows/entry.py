"""The `racemine` executable: flows.cli, except for a read the warehouse's writer answers.

While a racemine job writes the warehouse, it answers other processes' queries itself (see
warehouse.host). A `racemine sql` it answers needs nothing but that socket, yet the command
line's framework and DuckDB cost ~0.4 CPU s to load: a script that asks once a second during
a nightly mine would take that from the mine, on cores the mine keeps busy. So a plain
`racemine sql QUERY [--warehouse PATH] [--format FORMAT]` whose warehouse is announced by a
live writer is answered here (~0.07 CPU s); everything else, and any query this path cannot
answer as the full command would (an error, a writer that went away, a spelling of the
options it does not read), goes to flows.cli, which says the same things in the same words.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from pathlib import Path

from flows.defaults import CONFIG_FILE, WAREHOUSE

_OPTIONS = {"--warehouse": "warehouse", "-w": "warehouse", "--format": "format",
            "-f": "format"}


def _warehouse_setting() -> str | None:
    """The warehouse flows.settings would choose with no --warehouse; None when that takes
    the config file, which only flows.settings reads."""
    # pydantic-settings reads environment names case-insensitively
    env = {name.lower(): value for name, value in os.environ.items()}
    if "racemine_warehouse" in env:
        return env["racemine_warehouse"] or None
    if Path(os.environ.get("RACEMINE_CONFIG", CONFIG_FILE)).is_file():
        return None
    return WAREHOUSE


def hosted_sql_args(argv: Sequence[str]) -> tuple[str, Path, str] | None:
    """(query, warehouse, format) of a plain `sql QUERY [-w PATH] [-f FORMAT]`; None for any
    other command line, which flows.cli parses."""
    if not argv or argv[0] != "sql":
        return None
    from flows.output import OutputFormat

    query: str | None = None
    given: dict[str, str] = {}
    rest = iter(argv[1:])
    for arg in rest:
        if arg.startswith("--") and "=" in arg:
            name, value = arg.split("=", 1)
        elif arg in _OPTIONS:
            name, value = arg, next(rest, "")
        elif arg.startswith("-") or query is not None:  # --help, -fcsv, a second argument
            return None
        else:
            query = arg
            continue
        if name not in _OPTIONS or _OPTIONS[name] in given or not value:
            return None
        given[_OPTIONS[name]] = value
    warehouse = given.get("warehouse") or _warehouse_setting()
    fmt = given.get("format", "table")
    if query is None or warehouse is None or fmt not in set(OutputFormat):
        return None
    return query, Path(warehouse), fmt


def _answer_hosted_sql(argv: Sequence[str]) -> bool:
    """Print the rows of `racemine sql` as the warehouse's writer answers them; False when
    this is not such a command or the writer does not answer it."""
    args = hosted_sql_args(argv)
    if args is None:
        return False
    query, warehouse, fmt = args
    from warehouse.host import HostError, announced, hosted_rows

    if not announced(warehouse):
        return False
    try:
        rows = hosted_rows(warehouse, query)
    except HostError:  # the full command says why, in its words
        return False
    if rows is None:
        return False
    columns, values = rows
    if fmt == "csv":
        from flows.output import csv_text

        sys.stdout.write(csv_text(columns, values))
    else:
        from rich.console import Console

        from flows.output import render_rows

        render_rows(Console(), columns, values, fmt)
    return True


def main() -> None:
    if _answer_hosted_sql(sys.argv[1:]):
        return
    from flows.cli import main as cli_main

    cli_main()
