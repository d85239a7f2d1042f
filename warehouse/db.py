"""Opening the DuckDB warehouse and applying its schema."""

from __future__ import annotations

import shutil
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext, suppress
from importlib import resources
from pathlib import Path

import duckdb

from warehouse.errors import (
    WarehouseInUseError,
    WarehouseUnavailableError,
    WarehouseWriteError,
)
from warehouse.host import (
    HostedConnection,
    HostError,
    announced,
    hosted_rows,
    hosted_snapshot,
    serving,
)

SCHEMA_VERSION = 10

# Steps that schema.sql's idempotent statements cannot express, keyed by the version
# they lead to. Version 1 had an always-empty function_changes with a narrower key.
_MIGRATIONS = {2: "DROP TABLE IF EXISTS function_changes"}  # 3 to 10 only add
# DuckDB moves its write-ahead log into the file once the log reaches this size (16 MB by
# default). Each move recompresses the last row group whole, file text stored earlier
# included: on elixir-lang/elixir's 22 MB of file text, 16 MB meant a move mid-mine as
# well as the one at close, and a file twice the size.
_WAL_AUTOCHECKPOINT = "64MiB"


def connect(path: str | Path, *, read_only: bool = False) -> duckdb.DuckDBPyConnection:
    """Open the warehouse file (created if missing unless read_only) with its schema applied."""
    path = Path(path)
    if read_only and not path.exists():
        raise WarehouseUnavailableError(
            f"warehouse {path}: no such file; run `racemine mine REPO` first or pass --warehouse"
        )
    if not read_only:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise WarehouseUnavailableError(
                f"warehouse {path}: its folder cannot be created ({exc.strerror}); pass a "
                "--warehouse path in a writable folder") from exc
    try:
        con = duckdb.connect(str(path), read_only=read_only, config={} if read_only else
                             {"wal_autocheckpoint": _WAL_AUTOCHECKPOINT})
    except duckdb.IOException as exc:
        text = str(exc)
        if "lock" in text.lower():
            raise WarehouseInUseError(
                f"warehouse {path}: in use by another process; wait for it to finish or use "
                "another --warehouse file"
            ) from exc
        raise WarehouseUnavailableError(f"warehouse {path}: cannot be opened ({text})") from exc
    except duckdb.Error as exc:
        raise WarehouseUnavailableError(
            f"warehouse {path}: not a readable DuckDB file ({exc}); move it aside and re-run"
        ) from exc
    if not read_only:
        ensure_schema(con)
    elif _version(con) != SCHEMA_VERSION:
        # A warehouse written by an older racemine: upgrade it once, then read.
        con.close()
        connect(path).close()
        return connect(path, read_only=True)
    return con


@contextmanager
def transaction(con: duckdb.DuckDBPyConnection) -> Iterator[None]:
    """BEGIN … COMMIT, rolled back on any failure without hiding the failure's reason."""
    con.execute("BEGIN")
    try:
        yield
    except BaseException:
        with suppress(duckdb.Error):  # a COMMIT that failed has already ended it
            con.execute("ROLLBACK")
        raise
    con.execute("COMMIT")


@contextmanager
def _write_errors(path: str | Path) -> Iterator[None]:
    """Turn DuckDB's failures to write (a full disk, a read-only file) into one sentence.

    Every save is a transaction, so what was committed before the failure stays, and the
    high-water mark only moves once a repository is done: the next run resumes.
    """
    try:
        yield
    except (duckdb.IOException, duckdb.PermissionException, duckdb.FatalException,
            duckdb.TransactionException) as exc:  # a failed commit: "Could not write file"
        reason = str(exc).splitlines()[0]
        raise WarehouseWriteError(
            f"warehouse {path}: cannot write ({reason}); free disk space or make the file "
            "writable and re-run — what was stored so far is kept") from exc


# How long a reader told by an announced racemine writer that it no longer answers (it is
# closing) waits for the file to be let go.
_HANDOVER_S = 5.0


@contextmanager
def open_warehouse(path: str | Path, *, read_only: bool = False, serve_reads: bool = False
                   ) -> Iterator[duckdb.DuckDBPyConnection]:
    """connect() for a block: closed at its end, failures to write as one sentence.

    A reader that finds the file held by a racemine process that serves reads gets a copy of
    what that process has committed (see warehouse.host); a writer with serve_reads serves
    them for the block."""
    path = Path(path)
    if read_only:
        with _reading(path, snapshot=True) as con:
            yield con
        return
    with _write_errors(path):
        con = connect(path)
        try:
            with serving(con, path) if serve_reads else nullcontext():
                yield con
                if serve_reads:  # readers go on being answered while the file is written out
                    with suppress(duckdb.Error):  # a read in flight: close checkpoints
                        con.execute("CHECKPOINT")
        finally:
            con.close()


@contextmanager
def query_warehouse(path: str | Path) -> Iterator[duckdb.DuckDBPyConnection | HostedConnection]:
    """A connection for a few read-only queries (`sql`, `stats`): to the file, or, while a
    racemine process writes it, one whose queries that process answers as of its last
    commit."""
    with _reading(Path(path), snapshot=False) as con:
        yield con


@contextmanager
def _reading(path: Path, *, snapshot: bool
             ) -> Iterator[duckdb.DuckDBPyConnection | HostedConnection]:
    """A read-only connection to the file; while a racemine writer holds it, a copy of what
    that writer committed (snapshot) or a connection it answers."""
    deadline = time.monotonic() + _HANDOVER_S
    folder: Path | None = None
    try:
        while True:
            try:
                con: duckdb.DuckDBPyConnection | HostedConnection = connect(path, read_only=True)
                break
            except WarehouseInUseError:
                writing = announced(path)
                if snapshot:
                    folder = folder or Path(tempfile.mkdtemp(prefix="racemine-snapshot-"))
                    copy = _copy_of_held(path, folder)
                    if copy is not None:
                        con = connect(copy, read_only=True)
                        break
                elif _answered(path):
                    con = HostedConnection(path)
                    break
                if not writing or time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
        try:
            yield con
        finally:
            con.close()
    finally:
        if folder is not None:
            shutil.rmtree(folder, ignore_errors=True)


def _copy_of_held(path: Path, folder: Path) -> Path | None:
    """A copy, in folder, of what the racemine process holding path has committed; None when
    none answers."""
    target = folder / path.name  # the same name: the same catalog name in queries
    for stale in (target, target.with_name(target.name + ".wal")):
        stale.unlink(missing_ok=True)
    try:
        return target if hosted_snapshot(path, target) else None
    except HostError as exc:
        raise WarehouseUnavailableError(
            f"warehouse {path}: the process writing it could not copy it for this read "
            f"({exc}); free space in {folder.parent} or wait for it to finish") from exc


def _answered(path: Path) -> bool:
    try:
        return hosted_rows(path, "SELECT 1") is not None
    except HostError:
        return False


@contextmanager
def limit_threads(con: duckdb.DuckDBPyConnection, threads: int) -> Iterator[None]:
    """DuckDB on at most this many threads for a block (at least one), as before after it."""
    before = con.execute("SELECT current_setting('threads')").fetchone()[0]
    con.execute(f"SET threads = {max(1, int(threads))}")
    try:
        yield
    finally:
        con.execute(f"SET threads = {int(before)}")


def _version(con: duckdb.DuckDBPyConnection) -> int | None:
    try:
        row = con.execute("SELECT max(version) FROM schema_version").fetchone()
    except duckdb.CatalogException:
        return None
    return row[0] if row else None


def ensure_schema(con: duckdb.DuckDBPyConnection) -> None:
    """Create every table and view that is missing; applying it twice changes nothing."""
    current = _version(con)
    if current == SCHEMA_VERSION:
        return  # already there; skipping the DDL keeps concurrent openers from conflicting
    if current is not None and current > SCHEMA_VERSION:
        raise WarehouseUnavailableError(
            f"warehouse schema version {current} is newer than this racemine "
            f"({SCHEMA_VERSION}); upgrade racemine")
    for version in range((current or SCHEMA_VERSION) + 1, SCHEMA_VERSION + 1):
        con.execute(_MIGRATIONS.get(version, "SELECT 1"))
    sql = resources.files("warehouse").joinpath("schema.sql").read_text("utf-8")
    con.execute(sql)
