"""Reads while a writer holds the warehouse: the writing process answers them.

DuckDB lets one process write a database file and no other process open it meanwhile, so a
long job (a mine over hundreds of repositories) would lock every reader out for hours. While
it runs, such a job serves reads from its own database: it listens on a Unix socket in a
private folder, announced by a file beside the warehouse (`<warehouse>.reads`, readable by
its owner only) that holds the socket's address and a key. A reader that finds the file
locked asks there for one of two things:

- rows of a query (`racemine sql`, `stats`), run on a cursor of the writer's database in a
  read-only transaction, so it sees what the writer has committed so far;
- a snapshot: the writer copies its database as committed into a file the reader names, and
  the reader opens that read-only (what an export or an evaluation reads in bulk).

The socket and its key are Python's `multiprocessing.connection` (HMAC authentication).
A reader's side (announced, hosted_rows, hosted_snapshot) loads no DuckDB: a `racemine sql`
answered here starts in a fraction of the time (see flows.entry).
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import socket
import tempfile
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from multiprocessing.connection import Connection, Listener

    import duckdb

Rows = tuple[list[str], list[tuple[Any, ...]]]


def door(warehouse: Path) -> Path:
    """The file that announces a writer's read host, beside the warehouse."""
    return warehouse.with_name(warehouse.name + ".reads")


def announced(warehouse: Path) -> bool:
    """Whether a live process announces reads of warehouse (a killed one leaves its file)."""
    try:
        pid = int(json.loads(door(warehouse).read_text("utf-8"))["pid"])
        os.kill(pid, 0)
    except (OSError, ValueError, KeyError, TypeError):
        return False
    return True


class ReadHost:
    """Answers other processes' reads from a writer's connection for a block."""

    def __init__(self, con: duckdb.DuckDBPyConnection, warehouse: Path) -> None:
        self._base = con.cursor()  # handed out as cursors, one per request
        self._lock = threading.Lock()
        self._door = door(warehouse)
        self._key = secrets.token_bytes(32)
        self._folder: Path | None = None  # the socket's, private (mode 0700), made on entry
        self._address = ""
        self._listener: Listener | None = None
        self._stopping = threading.Event()
        self._database = con.execute("SELECT current_database()").fetchone()[0]

    def __enter__(self) -> ReadHost:
        from multiprocessing.connection import Listener  # only where reads are served

        self._folder = Path(tempfile.mkdtemp(prefix="racemine-reads-"))
        self._address = str(self._folder / "socket")
        self._listener = Listener(self._address, family="AF_UNIX", authkey=self._key)
        _clear_stale(self._door)
        announced = self._door.with_name(self._door.name + f".{os.getpid()}")
        # made readable by the owner only from the start: it holds the key
        with os.fdopen(os.open(announced, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600),
                       "w", encoding="utf-8") as out:
            json.dump({"address": self._address, "key": self._key.hex(), "pid": os.getpid()},
                      out)
        os.replace(announced, self._door)
        threading.Thread(target=self._accept, name="racemine-reads", daemon=True).start()
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        from multiprocessing.connection import Client

        self._stopping.set()
        self._door.unlink(missing_ok=True)
        with suppress(OSError):  # wake the accept loop, which a closed listener does not
            Client(self._address, family="AF_UNIX", authkey=self._key).close()
        if self._listener is not None:
            self._listener.close()
        if self._folder is not None:
            shutil.rmtree(self._folder, ignore_errors=True)
        self._base.close()

    def _accept(self) -> None:
        assert self._listener is not None
        while not self._stopping.is_set():
            try:
                client = self._listener.accept()
            except (OSError, EOFError):  # a caller that failed authentication, or closing
                continue
            threading.Thread(target=self._serve, args=(client,), name="racemine-read",
                             daemon=True).start()

    def _serve(self, client: Connection) -> None:
        import duckdb  # loaded already: this process writes the warehouse

        with client:
            try:
                request = client.recv()
            except (OSError, EOFError):
                return
            try:
                reply: tuple[Any, ...] = ("ok", *self._answer(request))
            except duckdb.Error as exc:
                reply = ("error", str(exc).splitlines()[0])
            with suppress(OSError):  # the reader went away
                client.send(reply)

    def _answer(self, request: tuple[Any, ...]) -> tuple[Any, ...]:
        import duckdb

        with self._lock:
            cur = self._base.cursor()
        try:
            if request[0] == "query":
                return _query(cur, request[1], request[2])
            if request[0] == "snapshot":
                self._snapshot(cur, Path(request[1]))
                return ()
            raise duckdb.InvalidInputException(f"unknown request {request[0]!r}")
        finally:
            cur.close()

    def _snapshot(self, cur: duckdb.DuckDBPyConnection, target: Path) -> None:
        alias = f"racemine_snapshot_{secrets.token_hex(4)}"
        quoted = str(target).replace("'", "''")
        cur.execute(f"ATTACH '{quoted}' AS {alias}")
        try:
            cur.execute("BEGIN")  # one transaction: every table as of the same commit
            cur.execute(f'COPY FROM DATABASE "{self._database}" TO {alias}')
            cur.execute("COMMIT")
        finally:
            cur.execute(f"DETACH {alias}")


_served: set[Path] = set()  # warehouses this process serves reads of
_served_lock = threading.Lock()


@contextmanager
def serving(con: duckdb.DuckDBPyConnection, warehouse: Path) -> Iterator[None]:
    """Serve other processes' reads of warehouse for the block, unless this process does so
    already (a job inside another: the outer one's host goes on answering)."""
    if not hasattr(socket, "AF_UNIX"):  # Windows: no Unix sockets, no reads served
        yield
        return
    key = warehouse.resolve()
    with _served_lock:
        first = key not in _served
        _served.add(key)
    if not first:
        yield
        return
    try:
        with ReadHost(con, warehouse):
            yield
    finally:
        with _served_lock:
            _served.discard(key)


def _clear_stale(announcement: Path) -> None:
    """Remove the socket folder a writer killed outright left behind: whoever announced it
    is gone, as this process holds the file's write lock now."""
    try:
        folder = Path(json.loads(announcement.read_text("utf-8"))["address"]).parent
    except (OSError, ValueError, KeyError, TypeError):
        return
    if folder.name.startswith("racemine-reads-") and folder.parent == Path(tempfile.gettempdir()):
        shutil.rmtree(folder, ignore_errors=True)


def _query(cur: duckdb.DuckDBPyConnection, sql: str, params: Sequence[Any] | None) -> Rows:
    cur.execute("BEGIN TRANSACTION READ ONLY")
    try:
        result = cur.execute(sql, params)
        if result.description is None:
            return [], []
        return [d[0] for d in result.description], result.fetchall()
    finally:
        cur.execute("ROLLBACK")


def _ask(warehouse: Path, request: tuple[Any, ...]) -> tuple[Any, ...] | None:
    """The host's reply, or None when no writer answers reads for this warehouse."""
    from multiprocessing.connection import Client

    try:
        announced = json.loads(door(warehouse).read_text("utf-8"))
        with Client(announced["address"], family="AF_UNIX",
                    authkey=bytes.fromhex(announced["key"])) as host:
            host.send(request)
            return host.recv()
    except (OSError, EOFError, ValueError, KeyError):  # no door, a stale one, a host gone
        return None


class HostError(Exception):
    """The writer could not answer a read; the message says why."""


def _reply(warehouse: Path, request: tuple[Any, ...]) -> tuple[Any, ...] | None:
    reply = _ask(warehouse, request)
    if reply is not None and reply[0] == "error":
        raise HostError(reply[1])
    return None if reply is None else reply[1:]


def hosted_rows(warehouse: Path, sql: str, params: Sequence[Any] | None = None) -> Rows | None:
    """Rows of a read-only query, answered by the process writing the warehouse (None when
    none answers)."""
    reply = _reply(warehouse, ("query", sql, list(params) if params is not None else None))
    return None if reply is None else (reply[0], reply[1])


def hosted_snapshot(warehouse: Path, target: Path) -> bool:
    """Have the process writing the warehouse copy it, as committed, to target (a new DuckDB
    file); False when none answers."""
    return _reply(warehouse, ("snapshot", str(target))) is not None


class HostedResult:
    """What a query answered by the writer gives back: DB-API's description and rows."""

    def __init__(self, rows: Rows) -> None:
        self.description = [(name,) for name in rows[0]] if rows[0] else None
        self._rows = rows[1]

    def fetchall(self) -> list[tuple[Any, ...]]:
        return self._rows

    def fetchone(self) -> tuple[Any, ...] | None:
        return self._rows[0] if self._rows else None


class HostedConnection:
    """A read-only stand-in for a connection whose queries the writing process answers;
    enough of DuckDB's API for a few queries (execute, description, fetchall, fetchone)."""

    def __init__(self, warehouse: Path) -> None:
        self._warehouse = warehouse

    def execute(self, sql: str, params: Sequence[Any] | None = None) -> HostedResult:
        import duckdb  # its errors are what callers of a connection catch

        try:
            rows = hosted_rows(self._warehouse, sql, params)
        except HostError as exc:
            raise duckdb.Error(str(exc)) from exc
        if rows is None:
            raise duckdb.IOException(
                f"the process writing {self._warehouse} stopped answering reads")
        return HostedResult(rows)

    def close(self) -> None:
        pass
