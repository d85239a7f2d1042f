"""The DuckDB warehouse: schema, idempotent upserts, and one writer at a time."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import duckdb
import pytest

from warehouse.db import SCHEMA_VERSION, connect, ensure_schema, limit_threads
from warehouse.errors import WarehouseUnavailableError
from warehouse.save import upsert_rows


def _schema(con) -> list[tuple]:
    return con.execute(
        "SELECT table_name, column_name, data_type FROM information_schema.columns "
        "ORDER BY table_name, column_name").fetchall()


def test_ensure_schema_twice_is_a_no_op(warehouse_path: Path) -> None:
    """Applying the schema again changes no table, column or version row."""
    con = connect(warehouse_path)
    first = _schema(con)
    ensure_schema(con)
    con.execute("DELETE FROM schema_version")  # force the DDL path too
    ensure_schema(con)
    assert _schema(con) == first
    assert con.execute("SELECT version FROM schema_version").fetchall() == [(SCHEMA_VERSION,)]
    tables = {r[0] for r in con.execute("SHOW TABLES").fetchall()}
    assert {"repos", "commits", "file_changes", "function_changes", "annotations", "runs",
            "commit_labels", "fixes", "pairs"} <= tables


def test_upsert_replaces_on_natural_key(warehouse_path: Path) -> None:
    """Writing a row with an existing key replaces it instead of adding one."""
    con = connect(warehouse_path)
    row = {"repo": "r", "sha": "a" * 40, "parents": [], "is_merge": False,
           "subject": "s", "message": "s", "matched_terms": ["race"], "match_score": 1.0,
           "run_id": "x"}
    upsert_rows(con, "commits", [row, row])
    upsert_rows(con, "commits", [{**row, "subject": "t"}])
    assert con.execute("SELECT subject FROM commits").fetchall() == [("t",)]


def test_new_rows_are_inserted_and_a_stored_key_is_refused(warehouse_path: Path) -> None:
    """Rows said to be new are inserted plainly: a key already stored fails the write
    rather than being replaced in silence."""
    con = connect(warehouse_path)
    row = {"repo": "r", "sha": "a" * 40, "parents": [], "is_merge": False,
           "subject": "s", "message": "s", "matched_terms": ["race"], "match_score": 1.0,
           "run_id": "x"}
    assert upsert_rows(con, "commits", [row, row], new=True) == 1
    with pytest.raises(duckdb.ConstraintException):
        upsert_rows(con, "commits", [{**row, "subject": "t"}], new=True)
    assert con.execute("SELECT subject FROM commits").fetchall() == [("s",)]


def test_limit_threads_holds_for_its_block_only(warehouse_path: Path) -> None:
    """DuckDB runs on the threads asked for (never fewer than one) and as before after."""
    con = connect(warehouse_path)
    con.execute("SET threads = 3")

    def threads() -> int:
        return con.execute("SELECT current_setting('threads')").fetchone()[0]

    with limit_threads(con, 2):
        assert threads() == 2
    with pytest.raises(ValueError), limit_threads(con, 0):
        assert threads() == 1
        raise ValueError("a failure inside the block")
    assert threads() == 3


def test_second_writer_gets_a_clear_error(warehouse_path: Path) -> None:
    """While one process writes, another is told the warehouse is in use."""
    con = connect(warehouse_path)
    code = ("from warehouse.db import connect\n"
            f"connect({str(warehouse_path)!r})\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    con.close()
    assert proc.returncode != 0
    assert "WarehouseInUseError" in proc.stderr and "in use by another process" in proc.stderr


def test_read_only_needs_an_existing_file(tmp_path: Path) -> None:
    """Querying a warehouse that does not exist says to mine first."""
    with pytest.raises(WarehouseUnavailableError, match="racemine mine"):
        connect(tmp_path / "missing.duckdb", read_only=True)


def test_version_1_warehouse_is_migrated(tmp_path: Path) -> None:
    """A version-1 file gains parse_status and the module-keyed function_changes; rows stay."""
    path = tmp_path / "old.duckdb"
    con = duckdb.connect(str(path))
    con.execute("CREATE TABLE schema_version (version INTEGER PRIMARY KEY, applied_at "
                "TIMESTAMPTZ DEFAULT current_timestamp)")
    con.execute("INSERT INTO schema_version (version) VALUES (1)")
    con.execute("CREATE TABLE file_changes (repo VARCHAR NOT NULL, sha VARCHAR NOT NULL, "
                "path VARCHAR NOT NULL, old_path VARCHAR, change_type VARCHAR NOT NULL, "
                "language VARCHAR NOT NULL, is_test BOOLEAN NOT NULL, before VARCHAR, "
                "after VARCHAR, diff VARCHAR, lines_added INTEGER NOT NULL, lines_removed "
                "INTEGER NOT NULL, skipped_reason VARCHAR, run_id VARCHAR NOT NULL, "
                "PRIMARY KEY (repo, sha, path))")
    con.execute("INSERT INTO file_changes VALUES ('r', 's', 'a.ex', NULL, 'added', 'elixir', "
                "false, NULL, 'x', NULL, 1, 0, NULL, 'run')")
    con.execute("CREATE TABLE function_changes (repo VARCHAR, sha VARCHAR, path VARCHAR, "
                "function VARCHAR, PRIMARY KEY (repo, sha, path, function))")
    con.close()
    con = connect(path)
    assert con.execute("SELECT max(version) FROM schema_version").fetchone() == (SCHEMA_VERSION,)
    assert con.execute("SELECT path, parse_status FROM file_changes").fetchall() == [
        ("a.ex", None)]
    columns = {r[0] for r in con.execute("DESCRIBE function_changes").fetchall()}
    assert {"module", "change", "before_start"} <= columns


def test_read_only_open_upgrades_an_older_warehouse(warehouse_path: Path) -> None:
    """Queries on a file from an older racemine upgrade it first instead of failing."""
    con = connect(warehouse_path)
    con.execute("DROP VIEW commit_dedup")
    con.execute("DELETE FROM schema_version")
    con.execute("INSERT INTO schema_version (version) VALUES (2)")
    con.close()
    ro = connect(warehouse_path, read_only=True)
    assert ro.execute("SELECT count(*) FROM commit_dedup").fetchone() == (0,)
