"""Fixtures that build real throw-away git repositories with fixed authors and dates."""

from __future__ import annotations

import difflib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Mapping
from pathlib import Path

import duckdb
import pytest

from annotators.schema import FileInput, FunctionSpan
from flows.jobs.mine import mine_and_label
from flows.jobs.mining import RepoResult
from flows.settings import Settings
from miners.classify import PatternSet, load_pattern_set
from miners.functions import build_function_pairs
from miners.git import open_local
from tests.prefect_server import PrefectServer

_SERVER = pytest.StashKey[PrefectServer]()


class RepoBuilder:
    """A real git work tree whose commits have fixed authors and dates (stable shas)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.day = "2024-01-01"  # the date of the next commits; tests may move it on
        self._tick = 0
        path.mkdir(parents=True, exist_ok=True)
        self.git("init", "-q", "-b", "main")

    def git(self, *args: str) -> str:
        env = dict(os.environ)
        stamp = f"{self.day}T{self._tick // 60:02d}:{self._tick % 60:02d}:00+00:00"
        env.update({"GIT_AUTHOR_NAME": "Ada", "GIT_AUTHOR_EMAIL": "ada@example.org",
                    "GIT_COMMITTER_NAME": "Ada", "GIT_COMMITTER_EMAIL": "ada@example.org",
                    "GIT_AUTHOR_DATE": stamp, "GIT_COMMITTER_DATE": stamp,
                    "GIT_CONFIG_GLOBAL": os.devnull, "GIT_CONFIG_NOSYSTEM": "1"})
        out = subprocess.run(["git", "-C", str(self.path), *args], env=env, check=True,
                             capture_output=True, text=True)
        return out.stdout.strip()

    def commit(self, message: str, files: Mapping[str, str | bytes | None] = (),
               renames: Mapping[str, str] = ()) -> str:
        """Write (str/bytes), delete (None) and rename files, then commit; returns the sha."""
        for old, new in dict(renames).items():
            (self.path / new).parent.mkdir(parents=True, exist_ok=True)
            self.git("mv", old, new)
        for rel, content in dict(files).items():
            target = self.path / rel
            if content is None:
                self.git("rm", "-q", rel)
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            if isinstance(content, bytes):
                target.write_bytes(content)
            else:
                target.write_text(content)
            self.git("add", rel)
        self._tick += 1
        self.git("commit", "-q", "--allow-empty", "-m", message)
        return self.git("rev-parse", "HEAD")

    def merge(self, branch: str, message: str) -> str:
        self._tick += 1
        self.git("merge", "-q", "--no-ff", "-m", message, branch)
        return self.git("rev-parse", "HEAD")


COUNTER_RACY = """defmodule Counter do
  use GenServer

  def start_link(opts), do: GenServer.start_link(__MODULE__, opts, name: __MODULE__)

  def init(_opts) do
    :ets.new(:counters, [:named_table, :public])
    {:ok, %{}}
  end

  def bump(key) do
    case :ets.lookup(:counters, key) do
      [{^key, n}] -> :ets.insert(:counters, {key, n + 1})
      [] -> :ets.insert(:counters, {key, 1})
    end
  end
end
"""

COUNTER_FIXED = COUNTER_RACY.replace(
    """    case :ets.lookup(:counters, key) do
      [{^key, n}] -> :ets.insert(:counters, {key, n + 1})
      [] -> :ets.insert(:counters, {key, 1})
    end
""", """    :ets.update_counter(:counters, key, 1, {key, 0})
""")

POOL_DEADLOCK = """-module(pool).
-behaviour(gen_server).
-export([init/1, handle_call/3, handle_cast/2]).

init(Args) -> {ok, Args}.

handle_call(checkout, _From, State) ->
    Size = gen_server:call(self(), size),
    {reply, Size, State};
handle_call(size, _From, State) ->
    {reply, length(State), State}.

handle_cast(_Msg, State) -> {noreply, State}.
"""

POOL_FIXED = POOL_DEADLOCK.replace("    Size = gen_server:call(self(), size),\n",
                                   "    Size = length(State),\n")

COUNTER_TEST_FLAKY = """defmodule CounterTest do
  use ExUnit.Case, async: true

  test "bump notifies the listener" do
    pid = self()
    spawn(fn -> Counter.bump(:a); send(pid, :bumped) end)
    Process.sleep(10)
    assert [{:a, 1}] = :ets.lookup(:counters, :a)
  end
end
"""

COUNTER_TEST_FIXED = COUNTER_TEST_FLAKY.replace("    Process.sleep(10)\n",
                                                "    assert_receive :bumped\n")


@pytest.fixture
def history(tmp_path: Path) -> tuple[RepoBuilder, dict[str, str]]:
    """An Elixir/Erlang project whose history holds real-shaped fixes and decoys."""
    repo = RepoBuilder(tmp_path / "project")
    shas = {}
    shas["initial"] = repo.commit("Initial counter and pool", {
        "lib/counter.ex": COUNTER_RACY, "src/pool.erl": POOL_DEADLOCK,
        "test/counter_test.exs": COUNTER_TEST_FLAKY, "README.md": "# project\n",
        "LICENSE": "MIT License\n\nPermission is hereby granted, free of charge, to any "
                   "person obtaining a copy of this software\n",
        "lib/worker.ex": "defmodule Worker do\n  def run, do: :ok\nend\n",
        "mix.lock": "%{}\n"})
    shas["ets_race"] = repo.commit(
        "Fix race condition in Counter.bump\n\nTwo processes could both miss the key.",
        {"lib/counter.ex": COUNTER_FIXED})
    shas["deadlock"] = repo.commit("Fix deadlock when the pool calls itself",
                                   {"src/pool.erl": POOL_FIXED})
    shas["flaky"] = repo.commit("Fix flaky counter test",
                                {"test/counter_test.exs": COUNTER_TEST_FIXED})
    shas["trace"] = repo.commit("Fix trace output formatting",
                                {"lib/counter.ex": COUNTER_FIXED + "# trace\n"})
    shas["lock"] = repo.commit("Update mix.lock", {"mix.lock": "%{jason: 1}\n"})
    shas["rename"] = repo.commit(
        "Move worker under pool and fix race on startup",
        {"lib/pool/worker.ex": "defmodule Worker do\n  def run, do: :ok\n  def ok, do: 1\nend\n"},
        renames={"lib/worker.ex": "lib/pool/worker.ex"})
    shas["binary"] = repo.commit("Fix race in asset loader", {
        "lib/blob.ex": b"\x00\x01binary\x00data", "priv/logo.png": b"\x89PNG\r\n\x1a\n\x00"})
    shas["latin1"] = repo.commit("Avoid deadlock in legacy modules", {
        "lib/legacy.ex": "defmodule L do\n  # caf\xe9\nend\n".encode("latin-1"),
        "src/legacy.erl": "-module(legacy).\n%% caf\xe9\n".encode("latin-1")})
    shas["docs"] = repo.commit("Docs: explain race conditions in the README",
                               {"README.md": "# project\n\nAbout races.\n"})
    repo.git("checkout", "-q", "-b", "feature")
    shas["branch_fix"] = repo.commit("Fix race between checkout and checkin",
                                     {"src/pool.erl": POOL_FIXED + "%% ordered\n"})
    repo.git("checkout", "-q", "main")
    shas["merge"] = repo.merge("feature", "Merge branch 'feature' with the race fix")
    return repo, shas


def file_input(path: str, before: str | None, after: str | None, language: str = "elixir",
               is_test: bool = False) -> FileInput:
    """A changed file as the pipeline hands it to an annotator: git's kind of unified diff
    and the changed functions' spans from the same parser a mine uses."""
    diff = "".join(difflib.unified_diff((before or "").splitlines(True),
                                        (after or "").splitlines(True),
                                        f"a/{path}", f"b/{path}"))
    _, pairs = build_function_pairs(before, after, language, diff)
    spans = tuple(FunctionSpan(
        fn.name, fn.change, (fn.before.start_line, fn.before.end_line) if fn.before else None,
        (fn.after.start_line, fn.after.end_line) if fn.after else None)
        for fn in sorted(pairs, key=lambda p: ((p.before or p.after).start_line, p.name)))
    return FileInput(path, language, is_test, before, diff, spans, after)


@pytest.fixture
def mined(history: tuple[RepoBuilder, dict[str, str]], warehouse_path: Path,
          patterns: PatternSet) -> Path:
    """The fixture history mined: 8 commits for an LLM to label (test modules that need the
    shas as well define their own)."""
    repo, _ = history
    mine_local(repo.path, warehouse_path, patterns, name="github.com/acme/project")
    return warehouse_path


def mine_local(path: Path, warehouse: Path, patterns: PatternSet, run: str = "run", *,
               name: str | None = None, max_file_bytes: int = 1_000_000,
               all_branches: bool = False) -> RepoResult:
    """Mine and label a local repository as `racemine mine` does (the mine job's step)."""
    settings = Settings(warehouse=warehouse, max_file_bytes=max_file_bytes)
    return mine_and_label(open_local(str(path), name), settings, patterns, run,
                          all_branches=all_branches)


@pytest.fixture(scope="session", autouse=True)
def _own_cache(tmp_path_factory: pytest.TempPathFactory) -> None:
    """In-process commands (CliRunner) clone into a cache of the test run's own, never the
    user's (SZZ clones local repositories there)."""
    os.environ["RACEMINE_CACHE_DIR"] = str(tmp_path_factory.mktemp("racemine-cache"))


@pytest.fixture(scope="session")
def patterns() -> PatternSet:
    return load_pattern_set()


@pytest.fixture
def warehouse_path(tmp_path: Path) -> Path:
    return tmp_path / "warehouse.duckdb"


def clean_env(home: Path, **extra: str) -> dict[str, str]:
    """The environment of a racemine child process: no PREFECT_ or RACEMINE_ setting of the
    caller's, a cache and a Prefect home of its own."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "RACEMINE_"))}
    env.update({"PREFECT_HOME": str(home / "prefect"), "RACEMINE_CACHE_DIR": str(home / "cache"),
                "PREFECT_SERVER_ANALYTICS_ENABLED": "false", "COLUMNS": "200", **extra})
    return env


def as_from_a_shell() -> None:
    """In a child (a preexec_fn): Ctrl-C's default disposition, as a shell gives a command (a
    test runner's worker may ignore or block SIGINT, and a child inherits both)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})


def run_cli(*args: str, home: Path, extra: dict[str, str] | None = None
            ) -> subprocess.CompletedProcess[str]:
    """Run `racemine ARGS` in a child process, as a user runs it."""
    return subprocess.run([sys.executable, "-m", "flows", *args], capture_output=True,
                          text=True, env=clean_env(home, **(extra or {})), cwd=home,
                          timeout=600)


TABLES = {
    "commits": "repo, sha, subject, patch_id, n_files",
    "file_changes": "repo, sha, path, change_type, before, after, diff, skipped_reason, "
                    "parse_status",
    "function_changes": "repo, sha, path, module, function, change, before, after",
    "annotations": "repo, sha, target, annotator, status, bug_type, location_function",
}


def run_rows(warehouse: Path) -> list[tuple[str, str]]:
    """(kind, status) of every runs row, oldest first."""
    con = duckdb.connect(str(warehouse), read_only=True)
    try:
        return con.execute("SELECT kind, status FROM runs ORDER BY started_at").fetchall()
    finally:
        con.close()


def snapshot(warehouse: Path) -> dict[str, list[tuple]]:
    """Every stored row that carries data (not run ids or times), sorted."""
    con = duckdb.connect(str(warehouse), read_only=True)
    try:
        return {t: sorted(con.execute(f"SELECT {cols} FROM {t}").fetchall(), key=repr)
                for t, cols in TABLES.items()}
    finally:
        con.close()


# The folder pytest-xdist's workers share with the process that controls them (inherited
# through the environment): where the one Prefect server of the run is described.
_SHARED = "RACEMINE_TEST_SHARED"


def pytest_configure(config: pytest.Config) -> None:
    if not hasattr(config, "workerinput") and getattr(config.option, "numprocesses", None):
        os.environ[_SHARED] = tempfile.mkdtemp(prefix="racemine-tests-")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Start the shared Prefect server now if a selected test needs it, and run those tests
    last, so the server starts while the others run."""
    tracked = [item for item in items if "prefect_server" in getattr(item, "fixturenames", ())]
    if not tracked:
        return
    shared = os.environ.get(_SHARED) if hasattr(config, "workerinput") else None
    if shared:
        config.stash[_SERVER] = PrefectServer.shared(Path(shared))
    else:
        server = PrefectServer()
        server.start()
        config.stash[_SERVER] = server
    items[:] = [item for item in items if item not in tracked] + tracked


def pytest_unconfigure(config: pytest.Config) -> None:
    if hasattr(config, "workerinput"):
        return  # another worker may still use the server: the controlling process stops it
    shared = os.environ.pop(_SHARED, None)
    if shared:
        PrefectServer.stop_shared(Path(shared))
        shutil.rmtree(shared, ignore_errors=True)
    server = config.stash.get(_SERVER, None)
    if server is not None:
        server.stop()


@pytest.fixture(scope="session")
def prefect_server(request: pytest.FixtureRequest) -> PrefectServer:
    """The one real Prefect server of this test run (see tests/prefect_server.py)."""
    server = request.config.stash[_SERVER]
    server.wait_healthy()
    return server
