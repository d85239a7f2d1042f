"""The racemine command line end to end, in process, on the direct path: mine, sql, stats,
export, eval, annotate, discover."""

from __future__ import annotations

import json
from pathlib import Path

import duckdb
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from flows.cli import app
from tests.conftest import RepoBuilder, run_cli

runner = CliRunner()


def test_eval_against_gold(mined: tuple[Path, RepoBuilder, Path], tmp_path: Path) -> None:
    """eval reports precision and recall (as JSON, or as text that fits 80 columns), and
    names the gold repositories it found no warehouse name for."""
    warehouse, repo, _ = mined
    shas = dict(line.split(" ", 1)[::-1] for line in
                repo.git("log", "--format=%H %s").splitlines())
    gold = tmp_path / "gold.jsonl"
    rows = [
        {"repo": "acme/project", "sha": shas["Fix race condition in Counter.bump"],
         "is_concurrency_fix": True, "bug_type": "race_condition"},
        {"repo": "acme/project", "sha": shas["Fix deadlock when the pool calls itself"],
         "is_concurrency_fix": True, "bug_type": "deadlock"},
        {"repo": "acme/project", "sha": shas["Fix trace output formatting"],
         "is_concurrency_fix": False, "bug_type": "not_concurrency"},
        {"repo": "other/project", "sha": "0" * 40, "is_concurrency_fix": False,
         "bug_type": "not_concurrency"},
    ]
    gold.write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = runner.invoke(app, ["eval", str(gold), "-w", str(warehouse), "--json"])
    assert out.exit_code == 0, out.output
    report = json.loads(out.output)
    assert report["precision"]["value"] == 1.0 and report["recall"]["value"] == 1.0
    assert report["bug_type_accuracy"]["hits"] == 2
    assert [m["reason"] for m in report["missing"]] == ["commit not matched",
                                                        "repository not mined"]
    assert report["repos_not_found"] == ["other/project"]
    table = runner.invoke(app, ["eval", str(gold), "-w", str(warehouse)],
                          env={"COLUMNS": "80"})
    assert "precision" in table.output and "gold commits not in the warehouse" in table.output
    # which names were looked for, and what the warehouse holds instead
    assert "looked for other/project" in table.output.replace("\n", " ")
    assert "github.com/acme/project" in table.output
    assert "race_condition (1): race_condition 1" in table.output


@pytest.fixture(scope="module")
def mined(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, RepoBuilder, Path]:
    """A fixture repository mined twice through the CLI, named once by --name and once by
    PATH=owner/name."""
    from tests.conftest import history as build_history

    home = tmp_path_factory.mktemp("cli")
    repo, _ = build_history.__wrapped__(home)  # type: ignore[attr-defined]
    warehouse = home / "w.duckdb"
    first = runner.invoke(app, ["mine", str(repo.path), "--name", "github.com/acme/project",
                                "--warehouse", str(warehouse)], env={"COLUMNS": "80"})
    assert first.exit_code == 0, first.output
    assert "racemine mine: 1 repository" in first.output
    assert all(len(line) <= 80 for line in first.output.splitlines()), first.output
    second = runner.invoke(app, ["mine", f"{repo.path}=acme/project",
                                 "--warehouse", str(warehouse)])
    assert second.exit_code == 0, second.output
    assert "scanned 0 · matched 0" in second.output
    return warehouse, repo, home


def test_mine_summary_and_idempotence(mined: tuple[Path, RepoBuilder, Path]) -> None:
    """Two CLI runs store each commit once and record two completed runs."""
    warehouse, _, _ = mined
    con = duckdb.connect(str(warehouse), read_only=True)
    assert con.execute("SELECT count(*), count(DISTINCT sha) FROM commits").fetchone() == (9, 9)
    runs = con.execute("SELECT status, counts->>'matches' FROM runs ORDER BY started_at"
                       ).fetchall()
    assert runs == [("completed", "9"), ("completed", "0")]
    assert con.execute("SELECT DISTINCT repo FROM commits").fetchall() == [
        ("github.com/acme/project",)]


def test_sql_formats(mined: tuple[Path, RepoBuilder, Path]) -> None:
    """sql prints a table, CSV or JSON lines."""
    warehouse, _, _ = mined
    query = "SELECT bug_type, count(*) AS n FROM fixes GROUP BY 1 ORDER BY 1"
    csv_out = runner.invoke(app, ["sql", query, "-w", str(warehouse), "--format", "csv"])
    assert csv_out.exit_code == 0, csv_out.output
    assert csv_out.output.splitlines()[0] == "bug_type,n"
    assert "race_condition," in csv_out.output
    js = runner.invoke(app, ["sql", query, "-w", str(warehouse), "--format", "json"])
    rows = [json.loads(line) for line in js.output.splitlines()]
    assert {"bug_type": "deadlock", "n": 2} in rows
    table = runner.invoke(app, ["sql", query, "-w", str(warehouse)])
    assert "race_condition" in table.output


def test_sql_error_is_one_line(mined: tuple[Path, RepoBuilder, Path]) -> None:
    """A broken query exits 1 with DuckDB's reason."""
    warehouse, _, _ = mined
    out = runner.invoke(app, ["sql", "SELECT nope FROM commits", "-w", str(warehouse)])
    assert out.exit_code == 1
    assert "query failed" in out.output


def test_stats(mined: tuple[Path, RepoBuilder, Path]) -> None:
    """stats shows per-repo, bug type, language and year tables."""
    warehouse, _, _ = mined
    out = runner.invoke(app, ["stats", "-w", str(warehouse)], env={"COLUMNS": "200"})
    assert out.exit_code == 0, out.output
    for title in ("repositories", "bug types", "languages", "years", "github.com/acme/project",
                  "2024"):
        assert title in out.output


def test_export_folder(mined: tuple[Path, RepoBuilder, Path], tmp_path: Path) -> None:
    """The export command writes labeled fix pairs with provenance and a card, reproducibly."""
    warehouse, _, _ = mined
    out = tmp_path / "dataset"
    res = runner.invoke(app, ["export", str(out), "-f", "jsonl", "--split-by", "none",
                              "-w", str(warehouse)])
    assert res.exit_code == 0, res.output
    rows = [json.loads(line) for line in (out / "jsonl" / "train.jsonl").read_text().splitlines()]
    assert rows and all(r["is_concurrency_bug"] for r in rows)
    assert {"repo", "sha", "path", "before", "after", "diff", "bug_type", "annotator",
            "mine_run_id", "label_run_id", "event_sequence", "license"} <= set(rows[0])
    assert {r["license"] for r in rows} == {"MIT"}  # read from the fixture's LICENSE file
    assert any(r["path"] == "lib/counter.ex" and r["bug_type"] == "race_condition"
               for r in rows)
    assert "MIT" in (out / "README.md").read_text()
    again = tmp_path / "again"
    runner.invoke(app, ["export", str(again), "-f", "jsonl", "--split-by", "none",
                        "-w", str(warehouse)])
    assert (again / "jsonl" / "train.jsonl").read_bytes() == \
        (out / "jsonl" / "train.jsonl").read_bytes()
    res = runner.invoke(app, ["export", str(out), "--all", "--split-by", "none",
                              "-w", str(warehouse)])
    assert res.exit_code == 0, res.output
    con = duckdb.connect(str(warehouse), read_only=True)
    labeled, fixes = con.execute("SELECT count(*), count(*) FILTER (WHERE is_concurrency_bug) "
                                 "FROM pairs WHERE annotator IS NOT NULL").fetchone()
    table = pq.read_table(out / "data" / "train-00000-of-00001.parquet")
    assert (table.num_rows, len(rows)) == (labeled, fixes)
    assert not (out / "jsonl").exists()  # the folder was replaced, not merged into


def test_export_options_are_checked(mined: tuple[Path, RepoBuilder, Path], tmp_path: Path
                                    ) -> None:
    """Unknown choices, a time split without a date and a foreign folder are one sentence."""
    warehouse, _, _ = mined
    for args, says in ((["--format", "csv"], "--format 'csv'"),
                       (["--split-by", "time"], "--test-after"),
                       (["--fractions", "0.8,0.2"], "three shares"),
                       (["--scope", "prod"], "production or test")):
        res = runner.invoke(app, ["export", str(tmp_path / "x"), *args, "-w", str(warehouse)])
        assert res.exit_code == 2 and says in res.output, res.output
    foreign = tmp_path / "photos"
    foreign.mkdir()
    (foreign / "cat.jpg").write_bytes(b"\xff")
    res = runner.invoke(app, ["export", str(foreign), "-w", str(warehouse)])
    assert res.exit_code == 1 and "not a racemine export" in res.output
    assert (foreign / "cat.jpg").read_bytes() == b"\xff"


def test_bad_repo_spec_is_one_sentence(tmp_path: Path) -> None:
    """An unsafe spec stops before any work with one sentence naming it."""
    out = run_cli("mine", "ext::sh -c id", "--warehouse", str(tmp_path / "w.duckdb"),
                  home=tmp_path)
    assert out.returncode == 1
    assert "ext::" in out.stderr and "refused" in out.stderr
    assert "Traceback" not in out.stderr
    assert not (tmp_path / "w.duckdb").exists()
    assert not (tmp_path / "prefect").exists()  # the direct path never touches Prefect


def test_missing_warehouse_for_queries(tmp_path: Path) -> None:
    """Querying before mining tells the user to mine first."""
    out = runner.invoke(app, ["stats", "-w", str(tmp_path / "none.duckdb")])
    assert out.exit_code == 1 and "racemine mine" in out.output


def test_export_function_level(mined: tuple[Path, RepoBuilder, Path], tmp_path: Path) -> None:
    """Function-level export has one row per changed function, flagged at the bug location."""
    warehouse, _, _ = mined
    out = tmp_path / "functions"
    res = runner.invoke(app, ["export", str(out), "--level", "function", "--split-by", "none",
                              "-w", str(warehouse)])
    assert res.exit_code == 0, res.output
    rows = pq.read_table(out / "data" / "train-00000-of-00001.parquet").to_pylist()
    bump = next(r for r in rows if r["function"] == "bump/1")
    assert bump["module"] == "Counter" and bump["change"] == "modified"
    assert bump["is_bug_location"] and bump["bug_type"] == "race_condition"
    assert ":ets.lookup" in bump["before"] and ":ets.update_counter" in bump["after"]


def test_annotate_command_and_cost(mined: tuple[Path, RepoBuilder, Path], tmp_path: Path
                                   ) -> None:
    """racemine annotate labels through the LLM settings; stats --cost shows the ledger."""
    from tests.llm_server import FakeLLM, Reply

    warehouse, _, home = mined
    copy = tmp_path / "w.duckdb"
    copy.write_bytes(warehouse.read_bytes())
    secret = "sk-cli-PLANTED-SECRET"
    with FakeLLM() as llm:
        out = runner.invoke(app, ["annotate", "--warehouse", str(copy), "--limit", "3"],
                            env={"RACEMINE_LLM_BASE_URL": llm.base_url,
                                 "RACEMINE_LLM_MODEL": "gpt-4o-mini",
                                 "RACEMINE_LLM_API_KEY": secret})
        assert out.exit_code == 0, out.output
        assert len(llm.requests) == 3
    assert "3 labeled" in out.output and secret not in out.output
    cost = runner.invoke(app, ["stats", "--cost", "-w", str(copy)], env={"COLUMNS": "200"})
    assert cost.exit_code == 0, cost.output
    assert "llm/gpt-4o-mini/label_v3-" in cost.output
    con = duckdb.connect(str(copy), read_only=True)
    params = con.execute("SELECT parameters FROM runs WHERE kind = 'annotate'").fetchone()[0]
    assert secret not in params
    assert con.execute("SELECT round(sum(cost_usd), 8) FROM llm_calls").fetchone() == (
        round(3 * (100 * 0.15 + 20 * 0.60) / 1e6, 8),)
    con.close()
    with FakeLLM(lambda r, c: Reply(status=401, content="bad key")) as llm:
        refused = run_cli("annotate", "--warehouse", str(copy), home=home,
                          extra={"RACEMINE_LLM_BASE_URL": llm.base_url,
                                 "RACEMINE_LLM_MODEL": "gpt-4o-mini",
                                 "RACEMINE_LLM_API_KEY": secret})
    assert refused.returncode == 1 and "RACEMINE_LLM_API_KEY" in refused.stderr
    assert "Traceback" not in refused.stderr and secret not in refused.stderr


def test_discover_command(tmp_path: Path) -> None:
    """discover stores search results with a runs row; a refused token is one sentence."""
    from tests.github_server import FakeGitHub, make_repos

    warehouse = tmp_path / "w.duckdb"
    with FakeGitHub(make_repos(40)) as gh:
        out = runner.invoke(app, ["discover", "--warehouse", str(warehouse), "--min-stars",
                                  "100"], env={"RACEMINE_GITHUB_API_URL": gh.url,
                                               "RACEMINE_GITHUB_TOKEN": "ghp_PLANTED"})
        assert out.exit_code == 0, out.output
        assert gh.calls and "ghp_PLANTED" not in out.output
    con = duckdb.connect(str(warehouse), read_only=True)
    assert con.execute("SELECT min(stars) >= 100, count(*) > 0 FROM repos").fetchone() == (
        True, True)
    assert con.execute("SELECT kind, status FROM runs").fetchall() == [("discover", "completed")]
    con.close()
    with FakeGitHub([], lambda n, p: (401, {}, '{"message": "Bad credentials"}')) as gh:
        bad = runner.invoke(app, ["discover", "--warehouse", str(warehouse)],
                            env={"RACEMINE_GITHUB_API_URL": gh.url, "RACEMINE_GITHUB_TOKEN": ""})
    assert bad.exit_code == 1 and "RACEMINE_GITHUB_TOKEN" in bad.output
    assert "Traceback" not in bad.output and len(gh.calls) == 1


def test_annotate_run_where_every_commit_failed_is_failed(
        mined: tuple[Path, RepoBuilder, Path], tmp_path: Path) -> None:
    """Replies that never validate fail each commit, not the run; the command then exits 1
    and its runs row says failed, with why."""
    from tests.llm_server import FakeLLM, Reply

    warehouse, _, _ = mined
    copy = tmp_path / "w.duckdb"
    copy.write_bytes(warehouse.read_bytes())
    with FakeLLM(lambda r, c: Reply(content="I cannot answer in JSON.")) as llm:
        out = runner.invoke(app, ["annotate", "--warehouse", str(copy), "--limit", "2"],
                            env={"RACEMINE_LLM_BASE_URL": llm.base_url,
                                 "RACEMINE_LLM_MODEL": "gpt-4o-mini",
                                 "RACEMINE_LLM_API_KEY": "sk-test"})
    assert out.exit_code == 1, out.output
    assert "0 labeled · 2 failed" in out.output
    con = duckdb.connect(str(copy), read_only=True)
    status, errors = con.execute("SELECT status, errors FROM runs WHERE kind = 'annotate'"
                                 ).fetchone()
    con.close()
    assert status == "failed" and "2 of 2 commits got no valid label" in errors[0]
