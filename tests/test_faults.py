"""Fault injection: hostile specs, broken and odd repositories, failing disks and APIs.

Every fault ends in one of two ways: the data is stored as data (a skipped file, an empty
repository), or the run stops with one sentence that names the object and what to do, having
kept everything stored before it, and the next run completes as if nothing had happened.
"""

from __future__ import annotations

import json
import os
import resource
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest

from annotators.limits import Price
from annotators.llm import LLMConfig
from flows.jobs.annotate import annotate_with_llm
from flows.jobs.mining import mine_repository
from miners.classify import PatternSet
from miners.errors import MinerError, RepoNotFoundError, UnsafeSourceError
from miners.git import fetch_mirror, open_local
from miners.sources import check_spec, parse_remote_spec
from tests.conftest import (
    COUNTER_FIXED,
    COUNTER_RACY,
    RepoBuilder,
    clean_env,
    mine_local,
    run_cli,
    snapshot,
)
from tests.llm_server import FakeLLM, Reply, default_script
from warehouse.db import connect
from warehouse.errors import WarehouseError


def mine(repo_path: Path, warehouse: Path, patterns: PatternSet, run: str = "run",
         max_file_bytes: int = 1_000_000):
    return mine_local(repo_path, warehouse, patterns, run, name="github.com/acme/project",
                      max_file_bytes=max_file_bytes)


def one_sentence(message: str, *names: str) -> None:
    assert "\n" not in message and "Traceback" not in message
    for name in names:
        assert name in message, (name, message)


@pytest.mark.parametrize("spec", [
    "ext::sh -c touch% pwned", "fd::17", "file:///etc", "file://localhost/srv/repo",
    "--upload-pack=touch pwned", "-c core.sshCommand=touch", "github.com/../../etc",
    "https://github.com/../../etc/passwd", "https://github.com/a/..", "git@github.com:a/../..",
    "https://user:secret@github.com/a/b", "https://github.com/a/b?x=1",
])
def test_hostile_specs_are_refused_before_any_work(spec: str, tmp_path: Path) -> None:
    """Remote helpers, file:// URLs, option injection and path traversal never reach git."""
    with pytest.raises((UnsafeSourceError, RepoNotFoundError)) as err:
        check_spec(spec)
    one_sentence(str(err.value), repr(spec)[:20])
    assert "secret" not in str(err.value) or spec.endswith("/b")  # names the spec only


def test_a_cache_folder_never_leaves_its_root(tmp_path: Path) -> None:
    """Whatever the owner and name, the mirror folder stays inside the cache root."""
    with pytest.raises(UnsafeSourceError):
        parse_remote_spec("https://example.org/../../outside")
    cache = tmp_path / "cache"
    cache.mkdir()
    with pytest.raises((UnsafeSourceError, MinerError)):
        fetch_mirror(parse_remote_spec("https://127.0.0.1:9/..x/y"), cache)
    assert not any(p for p in tmp_path.rglob("*") if not p.is_relative_to(cache))


def test_missing_repositories(tmp_path: Path) -> None:
    """A path that does not exist and a server that does not answer are one sentence each,
    and leave no half-made mirror behind."""
    with pytest.raises(RepoNotFoundError) as err:
        check_spec(str(tmp_path / "nowhere" / "repo"))
    one_sentence(str(err.value), "nowhere")
    cache = tmp_path / "cache"
    with pytest.raises(MinerError) as err:
        fetch_mirror(parse_remote_spec("https://127.0.0.1:9/acme/gone.git"), cache)
    one_sentence(str(err.value), "acme/gone")
    assert not list(cache.rglob("*.git"))


def test_empty_repository_is_data(tmp_path: Path, warehouse_path: Path,
                                  patterns: PatternSet) -> None:
    """An empty repository mines to zero rows and a repos row, not an error."""
    result = mine(RepoBuilder(tmp_path / "empty").path, warehouse_path, patterns)
    assert (result.error, result.commits_scanned, result.matches) == (None, 0, 0)
    con = duckdb.connect(str(warehouse_path), read_only=True)
    assert con.execute("SELECT count(*) FROM repos").fetchone() == (1,)
    con.close()


def test_force_pushed_history_is_rescanned(history: tuple[RepoBuilder, dict[str, str]],
                                           warehouse_path: Path, patterns: PatternSet) -> None:
    """When the last mined tip is gone (force push), the run rescans without duplicates."""
    repo, _ = history
    mine(repo.path, warehouse_path, patterns, "first")
    first = snapshot(warehouse_path)
    repo.git("reset", "-q", "--hard", "HEAD~1")
    repo.git("reflog", "expire", "--expire=now", "--all")
    repo.git("gc", "-q", "--prune=now")
    result = mine(repo.path, warehouse_path, patterns, "second")
    assert result.commits_scanned > 0
    assert snapshot(warehouse_path) == first


def test_shallow_clone_is_mined(history: tuple[RepoBuilder, dict[str, str]], tmp_path: Path,
                                warehouse_path: Path, patterns: PatternSet) -> None:
    """A shallow clone is mined as far as its history goes; its oldest commit has no parent."""
    repo, _ = history
    shallow = tmp_path / "shallow"
    subprocess.run(["git", "clone", "-q", "--depth", "4", f"file://{repo.path}", str(shallow)],
                   check=True, capture_output=True)
    result = mine(shallow, warehouse_path, patterns)
    assert result.error is None and 0 < result.matches < len(history[1])
    assert snapshot(warehouse_path)["annotations"]


def _object_path(repo: RepoBuilder, sha: str) -> Path:
    return repo.path / ".git" / "objects" / sha[:2] / sha[2:]


def test_missing_object_stops_with_one_sentence_and_resumes(
        history: tuple[RepoBuilder, dict[str, str]], tmp_path: Path, warehouse_path: Path,
        patterns: PatternSet) -> None:
    """A blob gone from the object store stops the repository with a sentence pointing at
    git fsck; once repaired, the next run gives what a clean run gives."""
    repo, shas = history
    clean = tmp_path / "clean.duckdb"
    mine(repo.path, clean, patterns)
    blob = repo.git("rev-parse", f"{shas['deadlock']}:src/pool.erl")
    saved = _object_path(repo, blob).read_bytes()
    _object_path(repo, blob).unlink()
    with pytest.raises(MinerError) as err:
        mine(repo.path, warehouse_path, patterns)
    one_sentence(str(err.value), "fsck")
    _object_path(repo, blob).write_bytes(saved)
    mine(repo.path, warehouse_path, patterns, run="again")
    assert snapshot(warehouse_path) == snapshot(clean)


def test_corrupt_pack_stops_with_one_sentence(history: tuple[RepoBuilder, dict[str, str]],
                                              warehouse_path: Path, patterns: PatternSet
                                              ) -> None:
    """Flipped bytes in a pack file are a named error, not a crash or a silent gap."""
    repo, _ = history
    repo.git("repack", "-a", "-d", "-q")
    pack = next((repo.path / ".git" / "objects" / "pack").glob("*.pack"))
    pack.chmod(0o644)
    data = bytearray(pack.read_bytes())
    for i in range(200, len(data) - 40, 97):
        data[i] ^= 0xFF
    pack.write_bytes(bytes(data))
    with pytest.raises(MinerError) as err:
        mine(repo.path, warehouse_path, patterns)
    one_sentence(str(err.value))


def test_odd_files_are_data(tmp_path: Path, warehouse_path: Path, patterns: PatternSet) -> None:
    """A 50 MB file, non-UTF-8 names and text, a submodule and an LFS pointer named like
    source are stored or skipped with a reason; none of them stops the run."""
    repo = RepoBuilder(tmp_path / "odd")
    repo.commit("Initial", {"lib/counter.ex": COUNTER_RACY})
    (repo.path / "lib" / "big.ex").write_bytes(b"# " + b"x" * (50 * 2**20) + b"\n")
    (repo.path / os.fsdecode(b"lib/caf\xe9.ex")).write_bytes(b"defmodule Caf do # \xe9\nend\n")
    (repo.path / "lib" / "asset.ex").write_text(
        "version https://git-lfs.github.com/spec/v1\noid sha256:" + "a" * 64 + "\nsize 12\n")
    repo.git("add", "-A")
    dep = repo.git("rev-parse", "HEAD")
    repo.git("update-index", "--add", "--cacheinfo", f"160000,{dep},lib/dep.ex")
    repo.commit("Fix race condition in counter and vendor things",
                {"lib/counter.ex": COUNTER_FIXED})
    result = mine(repo.path, warehouse_path, patterns)
    assert result.error is None
    con = duckdb.connect(str(warehouse_path), read_only=True)
    rows = dict(con.execute("SELECT path, coalesce(skipped_reason, 'kept') FROM file_changes"
                            ).fetchall())
    con.close()
    assert rows["lib/counter.ex"] == "kept"
    assert rows["lib/big.ex"] == "too_large"
    assert rows["lib/asset.ex"] == "lfs_pointer"
    assert "lib/dep.ex" not in rows  # a submodule is not source code
    odd = [p for p in rows if p.startswith("lib/caf")]
    assert odd and rows[odd[0]] in ("kept", "undecodable")


def test_commit_touching_ten_thousand_files(tmp_path: Path, warehouse_path: Path,
                                            patterns: PatternSet) -> None:
    """A huge commit is mined in bounded batches, every file pair stored once."""
    repo = RepoBuilder(tmp_path / "huge")
    repo.commit("Initial", {"README.md": "x\n"})
    for i in range(10_000):
        path = repo.path / "lib" / f"m{i // 100}" / f"w{i}.ex"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(f"defmodule W{i} do\n  def run, do: {i}\nend\n")
    repo.git("add", "-A")
    repo.commit("Fix race condition in every worker")
    result = mine(repo.path, warehouse_path, patterns)
    assert result.error is None and result.pairs == 10_000
    con = duckdb.connect(str(warehouse_path), read_only=True)
    assert con.execute("SELECT count(*), count(DISTINCT path) FROM file_changes"
                       ).fetchone() == (10_000, 10_000)
    con.close()


def _limited_mine(repo: Path, warehouse: Path, limit: int) -> subprocess.CompletedProcess[str]:
    """Mine in a child process that may not write files past `limit` bytes (a full disk)."""
    code = ("import signal, sys\n"
            "from tests.conftest import mine_local\n"
            "from miners.classify import load_pattern_set\n"
            "from warehouse.errors import WarehouseError\n"
            "try:\n"
            f"    mine_local({str(repo)!r}, {str(warehouse)!r}, load_pattern_set(),\n"
            "               name='github.com/acme/project')\n"
            "except WarehouseError as exc:\n"
            "    sys.exit(f'error: {exc}')\n")

    def limit_writes() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # EFBIG instead of a killed process
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          preexec_fn=limit_writes, timeout=300)


def test_full_disk_stops_with_one_sentence_and_resumes(
        history: tuple[RepoBuilder, dict[str, str]], tmp_path: Path, warehouse_path: Path,
        patterns: PatternSet) -> None:
    """A disk that fills up mid-run stops it with one sentence; the next run completes."""
    repo, _ = history
    big = "".join(f"  def f{i}(x), do: x + {i}\n" for i in range(12_000))
    repo.commit("Add the generated module", {"lib/gen.ex": f"defmodule Gen do\n{big}end\n"})
    repo.commit("Fix race condition in the generated module",
                {"lib/gen.ex": f"defmodule Gen do\n{big}  def f(x), do: x\nend\n"})
    clean = tmp_path / "clean.duckdb"
    mine(repo.path, clean, patterns)
    proc = _limited_mine(repo.path, warehouse_path, 200_000)
    assert proc.returncode != 0
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("error: warehouse") and "disk" in last, proc.stderr
    mine(repo.path, warehouse_path, patterns, run="again")
    assert snapshot(warehouse_path) == snapshot(clean)


def test_warehouse_that_cannot_be_written(tmp_path: Path) -> None:
    """A warehouse path under a file, or a damaged file, is one sentence naming it."""
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(WarehouseError) as err:
        connect(blocker / "w.duckdb")
    one_sentence(str(err.value), str(blocker))
    damaged = tmp_path / "damaged.duckdb"
    damaged.write_bytes(b"not a database" * 1000)
    with pytest.raises(WarehouseError) as err:
        connect(damaged)
    one_sentence(str(err.value), str(damaged))
    assert damaged.read_bytes() == b"not a database" * 1000  # left for the user to inspect


@pytest.mark.skipif(shutil.which("chattr") is None, reason="chattr is not installed")
def test_read_only_warehouse(history: tuple[RepoBuilder, dict[str, str]], tmp_path: Path,
                             patterns: PatternSet) -> None:
    """An immutable warehouse file is refused with one sentence; queries still work."""
    repo, _ = history
    warehouse = tmp_path / "w.duckdb"
    mine(repo.path, warehouse, patterns)
    if subprocess.run(["chattr", "+i", str(warehouse)], capture_output=True).returncode:
        pytest.skip("this filesystem does not support immutable files")
    try:
        with pytest.raises(WarehouseError) as err:
            mine(repo.path, warehouse, patterns, run="again")
        one_sentence(str(err.value), str(warehouse))
        con = connect(warehouse, read_only=True)
        assert con.execute("SELECT count(*) FROM commits").fetchone()[0] > 0
        con.close()
    finally:
        subprocess.run(["chattr", "-i", str(warehouse)], check=True)


def test_llm_refusals_and_hangs_fail_one_commit_not_the_run(
        history: tuple[RepoBuilder, dict[str, str]], warehouse_path: Path,
        patterns: PatternSet) -> None:
    """A refusal and a reply that never comes are stored as failed with their reason; the
    other commits are labeled and the run ends."""
    repo, shas = history
    mine_repository(open_local(str(repo.path)), warehouse_path, patterns, "mine",
                    max_file_bytes=1_000_000)

    def script(request: dict, call: int) -> Reply:
        user = request["messages"][-1]["content"]
        if shas["deadlock"] in user:
            return Reply(refusal="I can't help with that.")
        if shas["flaky"] in user:
            return Reply(delay=30)  # far past the client's timeout
        return default_script(request, call)

    with FakeLLM(script) as llm:
        config = LLMConfig(model="test-model", base_url=llm.base_url, api_key="sk-test",
                           price=Price(1.0, 2.0), concurrency=4, timeout_s=1,
                           max_attempts=2, max_reasks=1)
        result = annotate_with_llm(warehouse_path, config, "run")
    con = duckdb.connect(str(warehouse_path), read_only=True)
    rows = {sha: (status, failure) for sha, status, failure in con.execute(
        "SELECT sha, status, failure FROM annotations WHERE annotator = ?",
        [config.annotator]).fetchall()}
    con.close()
    assert rows[shas["deadlock"]][0] == "failed" and "refused" in rows[shas["deadlock"]][1]
    assert rows[shas["flaky"]][0] == "failed" and "time" in rows[shas["flaky"]][1].lower()
    assert rows[shas["ets_race"]][0] == "ok"
    assert result.summary.failed == 2


def hold_with_duckdb(warehouse: Path) -> subprocess.Popen[str]:
    """A process that holds the warehouse with DuckDB alone (it answers no reads) until its
    stdin closes; it prints `holding` once it does."""
    return subprocess.Popen(
        [sys.executable, "-c", "import sys, duckdb\n"
         f"con = duckdb.connect({str(warehouse)!r})\nprint('holding', flush=True)\n"
         "sys.stdin.read()\n"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)


def test_second_process_is_told_the_warehouse_is_in_use(
        history: tuple[RepoBuilder, dict[str, str]], tmp_path: Path,
        patterns: PatternSet) -> None:
    """While one racemine writes, another command says so in one sentence and the file
    stays whole."""
    repo, _ = history
    warehouse = tmp_path / "w.duckdb"
    mine(repo.path, warehouse, patterns)
    before = snapshot(warehouse)
    holder = hold_with_duckdb(warehouse)
    try:
        assert holder.stdout and holder.stdout.readline().strip() == "holding"
        for args in (["stats"], ["export", str(tmp_path / "out")]):
            out = run_cli(*args, "--warehouse", str(warehouse), home=tmp_path)
            assert out.returncode == 1, out.stderr
            one_sentence(out.stderr.strip().replace("\n", " "), "in use by another process")
    finally:
        holder.communicate("", timeout=30)
    assert snapshot(warehouse) == before


_HOLDER = """import sys
from warehouse.db import open_warehouse
with open_warehouse(sys.argv[1], serve_reads=True) as con:
    print('holding', flush=True)
    for line in sys.stdin:
        con.execute(line)
        print('done', flush=True)
"""


def test_reads_are_answered_by_the_racemine_process_that_writes(
        history: tuple[RepoBuilder, dict[str, str]], tmp_path: Path,
        patterns: PatternSet) -> None:
    """While a racemine job holds the warehouse, `sql` and `stats` are answered by it as of
    its last commit (uncommitted work unseen), `export` reads a copy of what it committed,
    a reader cannot write through it, and nothing is left behind when it ends or dies."""
    repo, _ = history
    warehouse = tmp_path / "w.duckdb"
    mine(repo.path, warehouse, patterns)
    commits = len(snapshot(warehouse)["commits"])

    def export(out: Path) -> list[str]:
        done = run_cli("export", str(out), "--format", "jsonl", "--include-unknown-license",
                       "--warehouse", str(warehouse), home=tmp_path)
        assert done.returncode == 0, done.stderr
        return sorted(line for f in sorted(out.glob("jsonl/*.jsonl")) for line in f.open())

    unheld = export(tmp_path / "unheld")
    assert unheld
    holder = subprocess.Popen([sys.executable, "-c", _HOLDER, str(warehouse)],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert holder.stdin and holder.stdout

    def write(sql: str) -> None:
        holder.stdin.write(sql + "\n")
        holder.stdin.flush()
        assert holder.stdout.readline() == "done\n"

    def sql(query: str) -> subprocess.CompletedProcess[str]:
        return run_cli("sql", query, "--format", "csv", "--warehouse", str(warehouse),
                       home=tmp_path)

    try:
        assert holder.stdout.readline() == "holding\n"
        assert (tmp_path / "w.duckdb.reads").stat().st_mode & 0o077 == 0  # it holds a key
        assert sql("SELECT count(*) AS n FROM commits").stdout.split() == ["n", str(commits)]
        write("CREATE TABLE scratch AS SELECT 42 AS x")
        write("BEGIN; INSERT INTO scratch VALUES (7)")  # left uncommitted
        assert sql("SELECT x FROM scratch ORDER BY x").stdout.split() == ["x", "42"]
        refused = sql("DELETE FROM commits")
        assert refused.returncode == 1 and "read-only" in refused.stderr
        assert run_cli("stats", "--warehouse", str(warehouse), home=tmp_path).returncode == 0
        assert export(tmp_path / "held") == unheld
        write("COMMIT")
        assert sql("SELECT x FROM scratch ORDER BY x").stdout.split() == ["x", "7", "42"]
    finally:
        holder.communicate("", timeout=30)
    assert not (tmp_path / "w.duckdb.reads").exists()
    assert sql("SELECT count(*) AS n FROM scratch").stdout.split() == ["n", "2"]


_LOADED = """import sys
sys.argv = ['racemine', *sys.argv[1:]]
from flows.entry import main
try:
    main()
finally:  # also after the full command's exit
    print(sorted({m.split('.')[0] for m in sys.modules} & {'typer', 'click', 'duckdb',
          'pydantic', 'pydantic_settings', 'rich', 'flows'} | {'flows.cli'} & set(sys.modules)),
          file=sys.stderr)
"""


def test_a_read_the_writer_answers_prints_what_the_full_command_does_without_loading_it(
        history: tuple[RepoBuilder, dict[str, str]], tmp_path: Path,
        patterns: PatternSet) -> None:
    """`racemine sql` answered by the writing process is served without the CLI framework,
    settings or DuckDB (a query each second must cost a mine little), and prints what the
    full command prints, in every format; what it cannot answer goes to the full command."""
    repo, _ = history
    warehouse = tmp_path / "w.duckdb"
    mine(repo.path, warehouse, patterns)
    holder = subprocess.Popen([sys.executable, "-c", _HOLDER, str(warehouse)],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    query = ("SELECT * EXCLUDE (run_id), 'ünïcode, \"quoted\"' AS text, NULL AS nothing "
             "FROM commits ORDER BY sha")

    def racemine(how: tuple[str, str], *args: str, env: dict[str, str] | None = None
                 ) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, *how, *args], capture_output=True,
                              text=True, env=env or clean_env(tmp_path), cwd=tmp_path,
                              timeout=120)

    try:
        assert holder.stdout and holder.stdout.readline() == "holding\n"
        for fmt in ("table", "csv", "json"):
            args = ("sql", query, "--format", fmt, "-w", str(warehouse))
            quick, full = racemine(("-m", "flows"), *args), racemine(("-m", "flows.cli"), *args)
            assert quick.returncode == 0 and quick.stdout == full.stdout != "", quick.stderr
            loaded = racemine(("-c", _LOADED), *args)
            assert loaded.stdout == full.stdout
            expected = ["flows"] + (["rich"] if fmt != "csv" else [])
            assert loaded.stderr.strip().splitlines()[-1] == repr(expected)
        # the warehouse named by the environment, whatever the case of the variable's name
        env = clean_env(tmp_path, racemine_warehouse=str(warehouse))
        loaded = racemine(("-c", _LOADED), "sql", "SELECT 1 AS one", "-f", "csv", env=env)
        assert (loaded.stdout.split(), loaded.stderr.split()[-1]) == (["one", "1"], "['flows']")
        # a failing query, a write and --help are the full command's: same words as before
        for args, words in ((("sql", "SELECT nope FROM commits"), "query failed"),
                            (("sql", "DELETE FROM commits"), "read-only"),
                            (("sql", "--help"), "Run a read-only SQL query")):
            out = racemine(("-c", _LOADED), *args, "-w", str(warehouse))
            assert words in out.stdout + out.stderr and "flows.cli" in out.stderr, out.stderr
    finally:
        holder.communicate("", timeout=30)


def test_a_dead_writers_announcement_misleads_no_reader(
        history: tuple[RepoBuilder, dict[str, str]], tmp_path: Path,
        patterns: PatternSet) -> None:
    """A racemine writer killed outright leaves its announcement behind: readers then open the
    file themselves, or, while something else holds it, are told it is in use; the next
    writer replaces the announcement and removes it when done."""
    repo, _ = history
    warehouse = tmp_path / "w.duckdb"
    mine(repo.path, warehouse, patterns)
    holder = subprocess.Popen([sys.executable, "-c", _HOLDER, str(warehouse)],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert holder.stdout and holder.stdout.readline() == "holding\n"
    holder.kill()
    holder.wait()
    door = tmp_path / "w.duckdb.reads"
    assert door.exists()
    left = Path(json.loads(door.read_text())["address"]).parent
    assert left.exists()
    query = ("sql", "SELECT count(*) AS n FROM commits", "--warehouse", str(warehouse))
    assert run_cli(*query, home=tmp_path).returncode == 0
    other = hold_with_duckdb(warehouse)
    try:
        assert other.stdout and other.stdout.readline().strip() == "holding"
        for args in (query, ("export", str(tmp_path / "out"), "--warehouse", str(warehouse))):
            out = run_cli(*args, home=tmp_path)
            assert out.returncode == 1, out.stderr
            one_sentence(out.stderr.strip().replace("\n", " "), "in use by another process")
    finally:
        other.communicate("", timeout=30)
    assert run_cli("mine", str(repo.path), "--warehouse", str(warehouse),
                   home=tmp_path).returncode == 0
    assert not door.exists() and not left.exists()
