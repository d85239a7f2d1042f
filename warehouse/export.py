"""Dataset exports: the selected pairs, split without leaks, in every asked format, with a card.

Reads only from the warehouse (a read-only connection is enough). The folder is built beside
its destination and moved into place whole, so a killed export never leaves half a dataset
under the real name, and an existing export is replaced only once the new one is complete.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb

from warehouse.card import CardFacts, render_card
from warehouse.dataset import Selection, iter_split_rows, save_selection
from warehouse.errors import ExportError
from warehouse.formats import (
    ExportFormat,
    PartitionBy,
    parquet_files,
    write_dspy,
    write_hf_dict,
    write_hf_split,
    write_jsonl,
    write_parquet,
)
from warehouse.splits import SPLITS, SplitPlan, empty_splits, save_split_table

MANIFEST = "export.json"
MEMORY_LIMIT = "512MB"
TITLE = "racemine: concurrency-bug fixes in Elixir and Erlang"


@dataclass(frozen=True)
class ExportResult:
    out: Path
    rows: dict[str, int]  # split -> rows (splits with no rows are absent)
    files: dict[str, str] = field(default_factory=dict)  # relative path -> sha256
    empty: dict[str, str] = field(default_factory=dict)  # split meant to hold rows -> why not

    @property
    def total(self) -> int:
        return sum(self.rows.values())


def export_dataset(con: duckdb.DuckDBPyConnection, out: Path, selection: Selection,
                   plan: SplitPlan, formats: Sequence[ExportFormat] = (), *,
                   partition_by: PartitionBy | None = None,
                   quality: Mapping[str, Any] | None = None,
                   versions: Mapping[str, str] | None = None,
                   memory_limit: str = MEMORY_LIMIT) -> ExportResult:
    """Write the dataset folder `out`; Parquet in `data/` always, other formats as asked.

    Leaves con with memory_limit set and the export's temporary tables (export_rows, …).
    """
    _check_destination(out)
    staging = out.with_name(f".{out.name}.partial")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    # Past this limit DuckDB spills to its temp folder (beside the warehouse file), so an
    # export's memory does not grow with the warehouse; the default would be 80% of RAM.
    con.execute(f"SET memory_limit = '{memory_limit}'")
    try:
        rows, empty = _write(con, staging, selection, plan, set(formats), partition_by,
                             quality, versions or {})
        files = _digests(staging)
        manifest = {"selection": selection.describe(), "split": plan.describe(),
                    "formats": sorted(f.value for f in formats),
                    "partition_by": partition_by and partition_by.value,
                    "rows": rows, "empty_splits": empty,
                    "versions": dict(sorted((versions or {}).items())),
                    "files": files}
        (staging / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
        _swap_into_place(staging, out)
    except duckdb.OutOfMemoryException as exc:
        shutil.rmtree(staging, ignore_errors=True)
        raise ExportError(f"export to {out}: DuckDB ran out of its {memory_limit} memory "
                          "limit; set RACEMINE_EXPORT_MEMORY higher (e.g. 2GB)") from exc
    except OSError as exc:
        shutil.rmtree(staging, ignore_errors=True)
        raise ExportError(f"export to {out}: cannot write ({exc.strerror or exc}); free "
                          "disk space or choose another folder") from exc
    except duckdb.IOException as exc:
        shutil.rmtree(staging, ignore_errors=True)
        raise ExportError(f"export to {out}: DuckDB could not read or spill "
                          f"({str(exc).splitlines()[0][:160]}); free disk space beside the "
                          "warehouse and run again") from exc
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return ExportResult(out, rows, files, empty)


def _write(con: duckdb.DuckDBPyConnection, root: Path, selection: Selection, plan: SplitPlan,
           formats: set[ExportFormat], partition_by: PartitionBy | None,
           quality: Mapping[str, Any] | None, versions: Mapping[str, str]
           ) -> tuple[dict[str, int], dict[str, str]]:
    save_selection(con, selection)
    groups = save_split_table(con, "export_rows", plan)
    sizes = dict(con.execute("SELECT split, count(*) FROM split_rows GROUP BY split").fetchall())
    rows: dict[str, int] = {}
    data_files: dict[str, str] = {}
    written: list[Path] = []
    for split in (s for s in SPLITS if sizes.get(s)):
        name = split if partition_by else f"{split}-00000-of-00001.parquet"
        target = root / "data" / name
        rows[split] = write_parquet(iter_split_rows(con, selection.level, split), target,
                                    partition_by)
        files = parquet_files(target)
        written += files
        data_files[split] = f"data/{split}/**/*.parquet" if partition_by else f"data/{name}"
        if ExportFormat.JSONL in formats:
            write_jsonl(con, files, root / "jsonl" / f"{split}.jsonl")
        if ExportFormat.DSPY in formats:
            write_dspy(con, files, root / "dspy" / f"{split}.jsonl")
        if ExportFormat.HF in formats:
            write_hf_split(files, root / "hf" / split, split, TITLE)
    if ExportFormat.HF in formats:
        write_hf_dict(root / "hf", list(rows))
    empty = empty_splits(rows, groups, plan) if rows else {}
    near = _near_duplicates(con)
    facts = CardFacts(TITLE, selection.level.value,
                      {**selection.describe(), "split": plan.describe(),
                       "partition_by": partition_by and partition_by.value},
                      data_files, sorted(f.value for f in formats), near, quality, versions,
                      empty)
    if written:
        (root / "README.md").write_text(render_card(con, written, facts))
    else:
        (root / "README.md").write_text(f"# {TITLE}\n\nNo pair matched the export's options:\n\n"
                                        f"```json\n{json.dumps(facts.options, indent=2)}\n```\n")
    return rows, empty


def _near_duplicates(con: duckdb.DuckDBPyConnection) -> dict[str, int]:
    row = con.execute("""SELECT count(*), coalesce(sum(n), 0), count(*) FILTER (WHERE repos > 1)
                         FROM (SELECT count(*) AS n, count(DISTINCT repo) AS repos
                               FROM export_rows WHERE near_dup_key IS NOT NULL
                               GROUP BY near_dup_key HAVING count(*) > 1)""").fetchone()
    groups, rows, cross = row if row else (0, 0, 0)
    return {"groups": int(groups), "rows": int(rows), "cross_repo": int(cross)}


def _digests(root: Path) -> dict[str, str]:
    out = {}
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        with path.open("rb") as handle:
            out[path.relative_to(root).as_posix()] = hashlib.file_digest(handle, "sha256"
                                                                         ).hexdigest()
    return out


def _check_destination(out: Path) -> None:
    if out.exists() and not out.is_dir():
        raise ExportError(f"export folder {out}: a file is in the way; choose a folder name")
    if out.is_dir() and any(out.iterdir()) and not (out / MANIFEST).is_file():
        raise ExportError(f"export folder {out}: exists and is not a racemine export; "
                          "choose an empty or new folder")


def _swap_into_place(staging: Path, out: Path) -> None:
    old = out.with_name(f".{out.name}.old")
    shutil.rmtree(old, ignore_errors=True)
    if out.exists():
        out.rename(old)
    staging.rename(out)
    shutil.rmtree(old, ignore_errors=True)
