"""Per-repository Parquet shards: how work done elsewhere reaches the one DuckDB writer.

A mine task on another process or machine writes its rows as Parquet part files in a
temporary folder and renames the folder when complete, so a shard is either whole or
absent. The loader, in the process that owns the DuckDB file, upserts every complete
shard (idempotently: a shard loaded twice changes nothing), records the repository's
high-water mark from the shard's manifest, and removes it.
"""

from __future__ import annotations

import json
import os
import shutil
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb

from miners.licenses import LicenseGuess
from warehouse.db import transaction
from warehouse.save import save_high_water_mark, save_license

TABLES = ("commits", "file_changes", "function_changes")
_MANIFEST = "manifest.json"


@dataclass
class ShardWriter:
    """Writes one repository's rows, part by part, into a shard that appears atomically."""

    root: Path
    repo: str
    run_id: str

    def __post_init__(self) -> None:
        self._tmp = self.root / f".tmp-{uuid.uuid4().hex}"
        self._tmp.mkdir(parents=True)
        self._parts = 0

    def write(self, rows: Mapping[str, Sequence[Mapping[str, Any]]]) -> None:
        # pyarrow is imported here: a mine into DuckDB never writes a shard.
        import pyarrow as pa
        import pyarrow.parquet as pq

        for table in TABLES:
            if rows.get(table):
                folder = self._tmp / table
                folder.mkdir(exist_ok=True)
                pq.write_table(pa.Table.from_pylist(list(rows[table])),
                               folder / f"part-{self._parts:05d}.parquet")
        self._parts += 1

    def commit(self, url: str | None, head: str | None, tips: Sequence[str],
               license: LicenseGuess | None = None) -> Path:
        manifest = {"repo": self.repo, "url": url, "run_id": self.run_id, "head": head,
                    "tips": list(tips), "license": license and license.spdx,
                    "license_source": license and license.source}
        (self._tmp / _MANIFEST).write_text(json.dumps(manifest))
        final = self.root / f"{self.run_id}-{uuid.uuid4().hex[:8]}"
        os.replace(self._tmp, final)  # the shard appears whole or not at all
        return final

    def abort(self) -> None:
        shutil.rmtree(self._tmp, ignore_errors=True)


def load_shards(con: duckdb.DuckDBPyConnection, root: Path) -> list[str]:
    """Upsert every complete shard under root and delete it; returns the repos loaded."""
    loaded = []
    for shard in sorted(p for p in root.glob("*") if p.is_dir() and not p.name.startswith(".")):
        manifest = json.loads((shard / _MANIFEST).read_text())
        with transaction(con):
            con.execute("INSERT INTO repos (repo, url) VALUES (?, ?) ON CONFLICT (repo) DO "
                        "UPDATE SET url = coalesce(excluded.url, repos.url)",
                        [manifest["repo"], manifest["url"]])
            for table in TABLES:
                files = [str(f) for f in sorted((shard / table).glob("*.parquet"))]
                if files:
                    con.execute(f"INSERT OR REPLACE INTO {table} BY NAME "
                                "SELECT * FROM read_parquet(?, union_by_name = true)", [files])
            save_high_water_mark(con, manifest["repo"], manifest["head"], manifest["tips"])
            save_license(con, manifest["repo"], manifest.get("license"),
                         manifest.get("license_source"))
        shutil.rmtree(shard)
        loaded.append(manifest["repo"])
    return loaded
