"""Scale-out: Parquet shards written atomically, one loader into DuckDB, Dask equals threads."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import duckdb

from flows.mining import mine_to_shard
from miners.classify import PatternSet
from miners.git import open_local
from tests.conftest import RepoBuilder
from warehouse.db import connect
from warehouse.shards import ShardWriter, load_shards

TABLES = ("repos", "commits", "file_changes", "function_changes", "annotations")


def _rows(warehouse: Path, table: str) -> list[tuple]:
    con = duckdb.connect(str(warehouse), read_only=True)
    try:
        columns = [c[0] for c in con.execute(f"DESCRIBE {table}").fetchall()
                   if c[0] not in ("run_id", "created_at", "last_mined_at", "repo_url")]
        return con.execute(f"SELECT {', '.join(columns)} FROM {table} ORDER BY ALL").fetchall()
    finally:
        con.close()


def test_shard_appears_whole_and_loads_once(history: tuple[RepoBuilder, dict[str, str]],
                                            tmp_path: Path, patterns: PatternSet) -> None:
    """A finished shard loads into DuckDB, sets the high-water mark, and is removed."""
    repo, _ = history
    root = tmp_path / "shards"
    root.mkdir()
    aborted = ShardWriter(root, "x", "run")
    aborted.abort()
    result = mine_to_shard(open_local(str(repo.path)), root, patterns, "run", [],
                           max_file_bytes=1_000_000)
    assert [p for p in root.iterdir() if not p.name.startswith(".")] != []
    con = connect(tmp_path / "w.duckdb")
    assert load_shards(con, root) == ["local/project"]
    assert load_shards(con, root) == []  # nothing left: the shard was removed
    assert con.execute("SELECT count(*) FROM commits").fetchone() == (result.matches,)
    assert con.execute("SELECT last_mined_sha IS NOT NULL FROM repos").fetchone() == (True,)


def test_dask_runner_gives_the_same_warehouse(history: tuple[RepoBuilder, dict[str, str]],
                                              tmp_path: Path) -> None:
    """Mining on a local Dask cluster (shards + loader) equals the default thread runner."""
    repo, _ = history
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "RACEMINE_"))}
    env.update({"PREFECT_HOME": str(tmp_path / "prefect"), "COLUMNS": "200",
                "RACEMINE_CACHE_DIR": str(tmp_path / "cache"), "RACEMINE_CONCURRENCY": "2"})
    warehouses = {}
    for mode in ("threads", "dask"):
        warehouse = tmp_path / f"{mode}.duckdb"
        extra = ["--dask"] if mode == "dask" else []
        proc = subprocess.run([sys.executable, "-m", "flows.cli", "mine", str(repo.path),
                               "--warehouse", str(warehouse), *extra], capture_output=True,
                              text=True, env=env, timeout=600)
        assert proc.returncode == 0, proc.stderr
        warehouses[mode] = warehouse
    for table in TABLES:
        assert _rows(warehouses["threads"], table) == _rows(warehouses["dask"], table), table
    assert not any((tmp_path / "dask.shards").iterdir())
