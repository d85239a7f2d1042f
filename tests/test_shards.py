"""Scale-out: Parquet shards written atomically, one loader into DuckDB (the Dask run that
uses them is in test_tracked)."""

from __future__ import annotations

from pathlib import Path

import duckdb

from flows.jobs.mining import mine_to_shard
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
