"""SZZ on real git histories: blame looks through a reformat and a rename to the commit that
wrote the racy lines, never blames an Erlang comment, weighs an add-only fix's neighbours
as weaker evidence, says why a fix has no candidate, and resumes."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pytest
from typer.testing import CliRunner

from flows.cli import app
from flows.jobs.szz import trace_origins
from flows.settings import Settings
from miners.szz import FixFile, FixInput, Span, is_code, only_reformats, plan_blame
from tests.conftest import RepoBuilder, mine_local

COUNTER = """defmodule Counter do
  use GenServer

  def start_link(opts), do: GenServer.start_link(__MODULE__, opts, name: __MODULE__)

  def get(key) do
    case :ets.lookup(:counters, key) do
      [{^key, n}] -> n
      [] -> 0
    end
  end
end
"""
# The race: read, then write back, while another process does the same.
BUMP = """
  def bump(key) do
    n = get(key)
    :ets.insert(:counters, {key, n + 1})
    :ok
  end
"""
COUNTER_RACY = COUNTER.replace("\nend\n", "\n" + BUMP + "end\n")
# What mix format could make of it: other layout and parentheses, the same code.
COUNTER_FORMATTED = COUNTER_RACY.replace("def get(key) do", "def get(key)   do").replace(
    "    n = get(key)\n", "    n =\n      get(key)\n").replace(
    "GenServer.start_link(__MODULE__, opts, name: __MODULE__)",
    "GenServer.start_link(__MODULE__, opts,\n        name: __MODULE__)").replace(
    ":ok\n  end\n\nend", ":ok\n  end\nend")
COUNTER_FIXED = COUNTER_FORMATTED.replace(
    "    n =\n      get(key)\n    :ets.insert(:counters, {key, n + 1})\n",
    "    :ets.update_counter(:counters, key, 1, {key, 0})\n")

POOL = """-module(pool).
-export([checkout/1]).

checkout(Name) ->
    %% look the worker up by name
    case whereis(Name) of
        undefined -> {error, noproc};
        Pid -> {ok, Pid}
    end.
"""
POOL_RACY = POOL.replace("""    case whereis(Name) of
        undefined -> {error, noproc};
        Pid -> {ok, Pid}
    end.""", """    case whereis(Name) of
        undefined ->
            Pid = spawn(fun worker/0),
            register(Name, Pid),
            {ok, Pid};
        Pid -> {ok, Pid}
    end.""")
POOL_COMMENTED = POOL_RACY.replace("%% look the worker up by name",
                                   "%% look the worker up by name (may race: FIXME)")
POOL_FIXED = POOL_COMMENTED.replace("""    %% look the worker up by name (may race: FIXME)
    case whereis(Name) of
        undefined ->
            Pid = spawn(fun worker/0),
            register(Name, Pid),
            {ok, Pid};
        Pid -> {ok, Pid}
    end.""", """    gen_server:call(registry, {checkout, Name}).""")

CACHE = """defmodule Cache do
  def fetch(server, key) do
    pid = GenServer.whereis(server)
    ref = make_ref()
    send(pid, {:fetch, self(), ref, key})
    receive do
      {^ref, value} -> value
    end
  end
end
"""
CACHE_FIXED = CACHE.replace("    ref = make_ref()\n",
                            "    ref = make_ref()\n    _mon = Process.monitor(pid)\n")


@pytest.fixture
def traced(tmp_path: Path, patterns) -> tuple[Path, Settings, dict[str, str], RepoBuilder]:
    """A history with a race introduced, reformatted, renamed and fixed; an Erlang race
    whose line got a comment edit; an add-only fix; a fix that only creates a file."""
    repo = RepoBuilder(tmp_path / "project")
    shas: dict[str, str] = {}
    shas["base"] = repo.commit("Add counter", {"lib/counter.ex": COUNTER,
                                               "src/pool.erl": POOL,
                                               "lib/cache.ex": CACHE})
    repo.day = "2024-02-01"
    shas["intro"] = repo.commit("Add bump", {"lib/counter.ex": COUNTER_RACY})
    shas["pool_intro"] = repo.commit("Start missing workers", {"src/pool.erl": POOL_RACY})
    repo.day = "2024-03-01"
    shas["format"] = repo.commit("Run mix format", {"lib/counter.ex": COUNTER_FORMATTED})
    shas["comment"] = repo.commit("Note a doubt", {"src/pool.erl": POOL_COMMENTED})
    shas["rename"] = repo.commit("Move the counter", renames={
        "lib/counter.ex": "lib/counter/server.ex"})
    repo.day = "2024-04-11"
    shas["fix"] = repo.commit("Fix race condition in Counter.bump",
                              {"lib/counter/server.ex": COUNTER_FIXED})
    shas["pool_fix"] = repo.commit("Fix race condition when two callers start a worker",
                                   {"src/pool.erl": POOL_FIXED})
    shas["add_only"] = repo.commit("Fix deadlock when the cache server dies",
                                   {"lib/cache.ex": CACHE_FIXED})
    shas["created"] = repo.commit("Fix race condition with a new lock module", {
        "lib/lock.ex": "defmodule Lock do\n  def take(name), do: :global.set_lock(name)\nend\n"})
    warehouse = tmp_path / "w.duckdb"
    mine_local(repo.path, warehouse, patterns, name="github.com/acme/project")
    settings = Settings(warehouse=warehouse, cache_dir=tmp_path / "cache")
    return warehouse, settings, shas, repo


def _candidates(warehouse: Path, sha: str) -> list[tuple]:
    con = duckdb.connect(str(warehouse), read_only=True)
    try:
        return con.execute("SELECT candidate, rank, method, confidence, lines_blamed "
                           "FROM szz_candidates WHERE sha = ? ORDER BY rank", [sha]).fetchall()
    finally:
        con.close()


def _trace(warehouse: Path, sha: str) -> tuple:
    con = duckdb.connect(str(warehouse), read_only=True)
    try:
        return con.execute("SELECT status, reason, ignored_revs FROM szz_traces WHERE sha = ?",
                           [sha]).fetchone()
    finally:
        con.close()


def test_blame_looks_through_a_reformat_and_a_rename(traced) -> None:
    warehouse, settings, shas, _ = traced
    result = trace_origins(settings, every_commit=True)
    assert result.failed == 0 and result.status == "completed"
    top = _candidates(warehouse, shas["fix"])
    assert top[0][0] == shas["intro"] and top[0][2] == "blame", top
    assert shas["format"] not in [c[0] for c in top]
    assert _trace(warehouse, shas["fix"])[2] == [shas["format"]]
    con = duckdb.connect(str(warehouse), read_only=True)
    row = con.execute("SELECT introduced_by, bug_age_days, szz_status FROM fixes WHERE sha = ?",
                      [shas["fix"]]).fetchone()
    assert row == (shas["intro"], 70.0, "found")  # 2024-02-01 to 2024-04-11


def test_erlang_comments_are_never_blamed(traced) -> None:
    warehouse, settings, shas, _ = traced
    trace_origins(settings, every_commit=True)
    found = [c[0] for c in _candidates(warehouse, shas["pool_fix"])]
    assert found[0] == shas["pool_intro"]
    assert shas["comment"] not in found


def test_add_only_fix_blames_its_neighbours_as_weaker_evidence(traced) -> None:
    warehouse, settings, shas, _ = traced
    trace_origins(settings, every_commit=True)
    found = _candidates(warehouse, shas["add_only"])
    assert [(c[0], c[2]) for c in found] == [(shas["base"], "blame_adjacent")]
    assert found[0][3] <= 0.45 < _candidates(warehouse, shas["fix"])[0][3]


def test_a_fix_without_candidates_says_why(traced) -> None:
    warehouse, settings, shas, _ = traced
    trace_origins(settings, every_commit=True)
    status, reason, _ = _trace(warehouse, shas["created"])
    assert status == "none" and "created by it" in reason


def test_runs_resume_and_never_write_to_the_users_repository(traced) -> None:
    """Only untraced fixes are traced again; PyDriller's config write lands in racemine's
    own clone, not in the repository the user mined."""
    warehouse, settings, shas, repo = traced
    config = (repo.path / ".git" / "config").read_text()
    first = trace_origins(settings)  # the concurrency fixes only
    assert first.traced > 0 and first.failed == 0
    assert trace_origins(settings).traced == 0
    con = duckdb.connect(str(warehouse))
    con.execute("DELETE FROM szz_traces WHERE sha = ?", [shas["fix"]])
    con.close()
    assert trace_origins(settings).traced == 1  # a killed run's unsaved batch is redone
    assert (repo.path / ".git" / "config").read_text() == config
    clones = list((settings.cache_dir / "szz").iterdir())
    assert len(clones) == 1 and "markUnblamableLines" in (clones[0] / "config").read_text()


def test_a_repository_that_is_gone_is_one_sentence(traced, tmp_path: Path) -> None:
    _, settings, _, repo = traced
    repo.path.rename(tmp_path / "moved")
    result = trace_origins(settings)
    assert result.status == "failed" and len(result.errors) == 1
    assert "is gone; mine it again" in result.errors[0]


def test_cli_and_stats(traced) -> None:
    warehouse, settings, _, _ = traced
    env = {"RACEMINE_CACHE_DIR": str(settings.cache_dir), "COLUMNS": "80"}
    out = CliRunner().invoke(app, ["szz", "--all", "-w", str(warehouse)], env=env)
    assert out.exit_code == 0, out.output
    con = duckdb.connect(str(warehouse), read_only=True)
    stored = con.execute("SELECT count(*) FROM commits WHERE NOT is_merge").fetchone()[0]
    con.close()
    assert f"traced {stored} commits" in out.output
    assert all(len(line) <= 80 for line in out.output.splitlines()), out.output
    stats = CliRunner().invoke(app, ["stats", "-w", str(warehouse)], env=env)
    assert "bug age" in stats.output, stats.output


def test_code_lines_and_reformats() -> None:
    assert not is_code("  % a comment", "erlang") and is_code("  X = 1, % note", "erlang")
    assert not is_code("  # a comment", "elixir") and not is_code("    end", "elixir")
    assert not is_code("  ) ->", "erlang") and is_code("  {:ok, pid} ->", "elixir")
    assert only_reformats(COUNTER_RACY, COUNTER_FORMATTED, "elixir")
    assert not only_reformats(COUNTER_FORMATTED, COUNTER_FIXED, "elixir")
    assert only_reformats(POOL_RACY, POOL_COMMENTED, "erlang")
    assert not only_reformats("f() -> a(b + c).\n", "f() -> a(b - c).\n", "erlang")
    assert only_reformats("def f, do: g(nil)\n", "def f,\n  do: g :nil\n", "elixir")


def test_plan_reasons() -> None:
    racy = FixFile("lib/a.ex", None, "elixir", False, "x = 1\n", None)
    assert plan_blame(FixInput("r", "s", None, (racy,))).reason.startswith("the fix is a root")
    assert "no Elixir or Erlang" in plan_blame(FixInput("r", "s", "p", ())).reason
    before = "defmodule A do\n  @x 1\nend\n"
    diff = "@@ -2,0 +3 @@\n+  @y 2\n"
    outside = FixFile("lib/a.ex", None, "elixir", False, before, diff, (Span("f/0", 9, 9),))
    assert "no enclosing function" in plan_blame(FixInput("r", "s", "p", (outside,))).reason
    comment = FixFile("lib/a.ex", None, "elixir", False, "# old\nx\n", "@@ -1 +0,0 @@\n-# old\n")
    assert "only comments" in plan_blame(FixInput("r", "s", "p", (comment,))).reason


def test_a_fix_git_cannot_blame_fails_alone(traced) -> None:
    """A path missing from the fix's parent fails that fix, with git's reason; the others
    are traced, and the next run tries the failed one again."""
    warehouse, settings, shas, _ = traced
    con = duckdb.connect(str(warehouse))
    con.execute("UPDATE file_changes SET path = 'lib/nowhere.ex', old_path = NULL "
                "WHERE sha = ?", [shas["fix"]])
    con.close()
    result = trace_origins(settings, every_commit=True)
    assert result.failed == 1 and result.found > 0 and result.status == "partially_failed"
    status, reason, _ = _trace(warehouse, shas["fix"])
    assert status == "failed" and "lib/nowhere.ex" in reason
    assert _trace(warehouse, shas["pool_fix"])[0] == "found"
    assert trace_origins(settings, every_commit=True).traced == 1


def test_a_remote_is_traced_in_its_cache_mirror(traced, tmp_path: Path) -> None:
    """A remote repository is blamed in racemine's cache mirror; without one, the error
    says to mine it first."""
    import re
    import subprocess

    from flows.jobs.szz import source_clone
    from miners.errors import MinerError

    _, _, _, repo = traced
    url = "https://example.org/acme/project.git"
    cache = tmp_path / "remote-cache"
    with pytest.raises(MinerError, match=re.escape("run `racemine mine https://example.org/")):
        source_clone("example.org/acme/project", url, None, cache)
    mirror = cache / "example.org" / "acme" / "project.git"
    subprocess.run(["git", "clone", "-q", "--bare", str(repo.path), str(mirror)], check=True)
    assert source_clone("example.org/acme/project", url, None, cache) == str(mirror)
