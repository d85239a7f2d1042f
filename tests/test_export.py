"""Dataset exports: every format read back by its consumer library, leak-free splits,
license and label filters, the dataset card, and byte-identical repeats."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import duckdb
import pyarrow.parquet as pq
import pytest

from annotators.schema import (
    Action,
    Annotation,
    BugLabel,
    BugLocation,
    BugType,
    EventStep,
    Scope,
)
from flows.jobs.export import run_export
from miners.classify import load_pattern_set
from tests.conftest import COUNTER_FIXED, COUNTER_RACY, RepoBuilder, mine_local
from tests.conftest import history as build_history
from warehouse.dataset import ExportLevel, Selection
from warehouse.db import connect
from warehouse.export import MANIFEST, export_dataset
from warehouse.formats import DSPY_FIELDS, DSPY_INPUTS, ExportFormat, PartitionBy
from warehouse.save import save_annotations
from warehouse.splits import SPLITS, SplitBy, SplitPlan, assign_groups, build_repo_groups

APACHE = "                                 Apache License\n     Version 2.0, January 2004\n"
GPL = "                    GNU GENERAL PUBLIC LICENSE\n       Version 3, 29 June 2007\n"
LLM = "llm/test-model/label_v3-abc/schema-1"
# The core repository's counter fix, carried to a fork by hand: a comment on the changed
# line, so git patch-id differs while the change's tokens are the same.
FORK_FIXED = COUNTER_FIXED.replace("{key, 0})\n", "{key, 0})  # atomic\n")
WORKER = """defmodule {name} do
  def fetch(pid) do
    send(pid, {{:fetch, self()}})
    receive do
      {{:reply, value}} -> value
    end
  end
end
"""
WORKER_FIXED = WORKER.replace("    end\n  end", "    after\n      {ms} -> :timeout\n    end\n  end")
ALL_FORMATS = [ExportFormat.JSONL, ExportFormat.HF, ExportFormat.DSPY]


def _mine(repo: RepoBuilder, name: str, warehouse: Path) -> None:
    run = name.rsplit("/", 1)[-1]
    mine_local(repo.path, warehouse, load_pattern_set(), f"mine-{run}", name=name)


def _small_repo(root: Path, license_text: str | None, module: str, day: str, ms: int
                ) -> RepoBuilder:
    repo = RepoBuilder(root)
    repo.day = day
    files = {"lib/worker.ex": WORKER.format(name=module)}
    if license_text:
        files["LICENSE"] = license_text
    repo.commit("Initial worker", files)
    repo.commit(f"Fix timeout: {module}.fetch hangs forever when the server never replies",
                {"lib/worker.ex": WORKER_FIXED.format(name=module, ms=ms)})
    return repo


@pytest.fixture(scope="module")
def warehouse(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Six repositories: permissive, GPL and unlicensed ones, a fork holding a hand-copied
    fix, and later ones for a split by time; one commit also carries an LLM label."""
    root = tmp_path_factory.mktemp("export")
    path = root / "w.duckdb"
    core, _ = build_history.__wrapped__(root)  # type: ignore[attr-defined]
    _mine(core, "github.com/a/core", path)
    fork = RepoBuilder(root / "fork")
    fork.day = "2024-09-01"
    fork.commit("Fork the counter", {"lib/counter.ex": COUNTER_RACY, "LICENSE": APACHE})
    fork.commit("Fix race condition in Counter.bump", {"lib/counter.ex": FORK_FIXED})
    _mine(fork, "github.com/b/fork", path)
    # Different timeouts, so each is its own fix (not one patch-id, not one near-duplicate).
    for ms, (name, text, module, day) in enumerate((("c/gpl", GPL, "Gpl", "2024-02-01"),
                                                    ("d/mystery", None, "Mystery", "2024-03-01"),
                                                    ("e/late", APACHE, "Late", "2025-02-01"),
                                                    ("f/later", APACHE, "Later", "2025-03-01"))):
        _mine(_small_repo(root / name, text, module, day, 1000 + ms), f"github.com/{name}", path)
    con = connect(path)
    try:
        sha = con.execute("SELECT sha FROM commits WHERE repo = 'github.com/a/core' AND "
                          "subject LIKE 'Fix deadlock%'").fetchone()[0]
        steps = [EventStep(actor="client", action=Action.CALL, target="pool",
                           file="src/pool.erl", function="handle_call/3", line=7,
                           note="checkout reaches the pool"),
                 EventStep(actor="pool", action=Action.CALL, target="pool",
                           file="src/pool.erl", function="handle_call/3", line=8,
                           note="the pool calls itself and waits")]
        label = BugLabel(is_concurrency_bug=True, bug_type=BugType.DEADLOCK,
                         scope=Scope.PRODUCTION, bug_location=BugLocation(
                             file="src/pool.erl", function="handle_call/3", start_line=7,
                             end_line=11),
                         event_sequence=steps,
                         explanation="The server calls itself.", fix_summary="Compute inline.",
                         confidence=0.9)
        save_annotations(con, "github.com/a/core", "llm-run",
                         [(sha, "", Annotation(LLM, label, is_plausible=True))])
    finally:
        con.close()
    return path


def _export(warehouse: Path, out: Path, selection: Selection | None = None,
            plan: SplitPlan | None = None, formats=(), **kw):
    return run_export(warehouse, out, selection or Selection(), plan or SplitPlan(), formats,
                      **kw)


def _rows(out: Path) -> list[dict]:
    files = sorted((out / "data").rglob("*.parquet"))
    return [r for f in files for r in pq.read_table(f).to_pylist()]


def test_every_format_round_trips_through_its_library(warehouse: Path, tmp_path: Path) -> None:
    """Parquet (pyarrow, duckdb, datasets), the datasets folder, JSONL and DSPy hold the
    same rows."""
    import datasets
    import dspy

    out = tmp_path / "ds"
    result = _export(warehouse, out, formats=ALL_FORMATS)
    rows = _rows(out)
    assert len(rows) == result.total > 0
    ids = sorted(r["id"] for r in rows)

    con = duckdb.connect()
    assert sorted(i for (i,) in con.execute(
        f"SELECT id FROM read_parquet('{out}/data/*.parquet')").fetchall()) == ids
    # the card's configs name the Parquet files (a fresh cache: datasets caches by folder name)
    hub = datasets.load_dataset(str(out), cache_dir=str(tmp_path / "cache"))
    assert set(hub) == set(result.rows)
    assert sorted(i for split in hub.values() for i in split["id"]) == ids
    on_disk = datasets.load_from_disk(str(out / "hf"))
    assert {s: len(d) for s, d in on_disk.items()} == result.rows
    assert on_disk["train"][0] == hub["train"][0]
    jsonl = [json.loads(line) for s in result.rows
             for line in (out / "jsonl" / f"{s}.jsonl").read_text().splitlines()]
    assert sorted(r["id"] for r in jsonl) == ids

    examples = [json.loads(line) for s in result.rows
                for line in (out / "dspy" / f"{s}.jsonl").read_text().splitlines()]
    with_before = {r["id"] for r in rows if r["before"] is not None}
    assert {e["id"] for e in examples} == with_before
    example = dspy.Example(**examples[0]).with_inputs(*DSPY_INPUTS)
    assert set(example.inputs().keys()) == set(DSPY_INPUTS)
    assert set(DSPY_FIELDS) <= set(example.keys())
    counter = next(e for e in examples if e["path"] == "lib/counter.ex"
                   and e["repo"] == "github.com/a/core")
    assert ":ets.lookup" in counter["code"] and ":ets.update_counter" in counter["refactored_code"]
    assert counter["bug_type"] == "race_condition"
    steps = counter["event_sequence"]  # structured: the heuristic derived them from the diff
    assert [(s["step"], s["action"]) for s in steps] == [
        (1, "ets_read"), (2, "ets_read"), (3, "ets_write"), (4, "ets_write")]
    assert set(steps[0]) == {"step", "actor", "action", "target", "file", "function", "line",
                             "note"}
    assert steps[0]["file"] == "lib/counter.ex" and steps[0]["function"] == "bump/1"
    row = next(r for r in jsonl if r["id"] == counter["id"])
    assert row["verified"] and row["checks_passed"] and row["event_sequence"][0]["check_ok"]
    assert row["event_sequence_text"][0].startswith("1. [caller A of bump/1] ets_read")
    assert "## The interleaving as steps" in (out / "README.md").read_text()
    assert counter["bug_location"].startswith("lib/counter.ex:")
    assert "lib/counter.ex" in counter["task_description"]
    assert "race" not in counter["task_description"].split("(")[0]  # the input hides the answer
    functions = tmp_path / "functions"
    _export(warehouse, functions, Selection(level=ExportLevel.FUNCTION), formats=ALL_FORMATS)
    located = {r["id"] for r in _rows(functions) if r["is_bug_location"]}
    examples = [json.loads(line) for f in (functions / "dspy").glob("*.jsonl")
                for line in f.read_text().splitlines()]
    assert examples and {e["id"] for e in examples} <= located


def test_rows_carry_their_provenance(warehouse: Path, tmp_path: Path) -> None:
    """Every row names its repository, commit, path, mine run, annotator and label run."""
    _export(warehouse, tmp_path / "ds")
    rows = _rows(tmp_path / "ds")
    for row in rows:
        assert row["repo"] and len(row["sha"]) == 40 and row["path"]
        assert row["mine_run_id"].startswith("mine-") and row["annotator"]
        assert row["label_run_id"] and row["split"] in SPLITS
    assert "is_canonical" not in rows[0] and "author_day" not in rows[0]


def test_license_allowlist(warehouse: Path, tmp_path: Path) -> None:
    """Permissive licenses only by default; GPL on request; unknown ones only when asked."""
    def repos(selection: Selection) -> set[str]:
        out = tmp_path / "ds"
        _export(warehouse, out, selection, SplitPlan(by=SplitBy.NONE))
        return {r["repo"].split("/", 1)[1] for r in _rows(out)}

    assert repos(Selection()) == {"a/core", "b/fork", "e/late", "f/later"}
    assert "c/gpl" in repos(Selection(licenses=("GPL-3.0",)))
    assert "d/mystery" not in repos(Selection(licenses=("GPL-3.0",)))
    assert "d/mystery" in repos(Selection(include_unknown_license=True))


@pytest.mark.parametrize(("selection", "check"), [
    (Selection(languages=("erlang",)), lambda r: r["language"] == "erlang"),
    (Selection(bug_types=("race_condition",)), lambda r: r["bug_type"] == "race_condition"),
    (Selection(scope="test"), lambda r: r["scope"] == "test"),
    (Selection(min_confidence=0.6), lambda r: r["confidence"] >= 0.6),
    (Selection(annotator="llm"), lambda r: r["annotator"] == LLM),
    (Selection(verified_only=True),
     lambda r: r["verified"] and r["checks_passed"] and r["is_plausible"] is not False),
    (Selection(since=__import__("datetime").date(2025, 1, 1)),
     lambda r: r["author_date"] >= "2025-01-01"),
    (Selection(until=__import__("datetime").date(2024, 12, 31)),
     lambda r: r["author_date"] < "2025-01-01"),
])
def test_filters(warehouse: Path, tmp_path: Path, selection: Selection, check) -> None:
    """Each filter keeps exactly the rows it names, and some rows pass it."""
    everything = tmp_path / "all"
    _export(warehouse, everything, Selection(include_unknown_license=True, licenses=("MIT",
            "Apache-2.0", "GPL-3.0")), SplitPlan(by=SplitBy.NONE))
    out = tmp_path / "some"
    wide = Selection(**{**selection.__dict__, "include_unknown_license": True,
                        "licenses": ("MIT", "Apache-2.0", "GPL-3.0")})
    _export(warehouse, out, wide, SplitPlan(by=SplitBy.NONE))
    kept, total = _rows(out), _rows(everything)
    assert kept and all(check(r) for r in kept)
    assert sorted(r["id"] for r in kept) == sorted(r["id"] for r in total if check(r))


@pytest.mark.parametrize("seed", [0, 1, 2, 3, 4, 5])
def test_split_by_repository_never_leaks(warehouse: Path, tmp_path: Path, seed: int) -> None:
    """No repository spans two splits, and the fork's hand-copied fix sits with the original."""
    out = tmp_path / "ds"
    result = _export(warehouse, out, Selection(include_unknown_license=True),
                     SplitPlan(fractions=(0.34, 0.33, 0.33), seed=seed))
    rows = _rows(out)
    split_of: dict[str, set[str]] = {}
    for row in rows:
        split_of.setdefault(row["repo"], set()).add(row["split"])
    assert all(len(s) == 1 for s in split_of.values())
    assert split_of["github.com/a/core"] == split_of["github.com/b/fork"]
    dup = {r["near_dup_key"] for r in rows if r["repo"] == "github.com/b/fork"}
    assert any(r["near_dup_key"] in dup for r in rows if r["repo"] == "github.com/a/core")
    assert len(result.rows) >= 2  # the shares asked for really spread the groups


def test_split_by_time_follows_the_earliest_copy(warehouse: Path, tmp_path: Path) -> None:
    """Pairs split by date; a later near-duplicate goes where its earliest copy went."""
    import datetime

    out = tmp_path / "ds"
    plan = SplitPlan(by=SplitBy.TIME, validation_after=datetime.date(2024, 6, 1),
                     test_after=datetime.date(2025, 3, 1))
    _export(warehouse, out, Selection(), plan)
    rows = _rows(out)
    by_repo = {}
    for r in rows:
        by_repo.setdefault(r["repo"], set()).add(r["split"])
    assert by_repo["github.com/a/core"] == {"train"}
    assert by_repo["github.com/e/late"] == {"validation"}
    assert by_repo["github.com/f/later"] == {"test"}
    # The fork's copy is dated after the validation day but its original is in train.
    fork = [r for r in rows if r["repo"] == "github.com/b/fork"]
    assert fork and {r["split"] for r in fork} == {"train"}


def test_same_warehouse_same_bytes(warehouse: Path, tmp_path: Path) -> None:
    """Two exports with the same options are byte-identical, file by file."""
    for level in ExportLevel:
        a, b = tmp_path / f"a-{level}", tmp_path / f"b-{level}"
        options = Selection(level=level, include_unknown_license=True)
        _export(warehouse, a, options, SplitPlan(fractions=(0.5, 0.25, 0.25)), ALL_FORMATS)
        _export(warehouse, b, options, SplitPlan(fractions=(0.5, 0.25, 0.25)), ALL_FORMATS)
        files_a = sorted(p.relative_to(a) for p in a.rglob("*") if p.is_file())
        assert files_a == sorted(p.relative_to(b) for p in b.rglob("*") if p.is_file())
        assert all((a / f).read_bytes() == (b / f).read_bytes() for f in files_a)
        manifest = json.loads((a / MANIFEST).read_text())
        assert set(manifest["files"]) == {str(f) for f in files_a} - {MANIFEST}


def test_partitioned_parquet(warehouse: Path, tmp_path: Path) -> None:
    """Partitioned Parquet keeps the partition column in the files and loads as one dataset."""
    import datasets

    out = tmp_path / "ds"
    _export(warehouse, out, Selection(), SplitPlan(by=SplitBy.NONE), [ExportFormat.HF],
            partition_by=PartitionBy.LANGUAGE)
    parts = sorted(p.parent.name for p in (out / "data" / "train").rglob("*.parquet"))
    assert parts == ["language=elixir", "language=erlang"]
    for f in (out / "data" / "train").rglob("*.parquet"):
        assert {r["language"] for r in pq.read_table(f).to_pylist()} == \
            {f.parent.name.split("=")[1]}
    hub = datasets.load_dataset(str(out), cache_dir=str(tmp_path / "cache"))
    assert len(hub["train"]) == len(datasets.load_from_disk(str(out / "hf"))["train"])


def test_dataset_card(warehouse: Path, tmp_path: Path) -> None:
    """The card counts splits, languages and bug types, lists sources and licenses,
    annotators, and the measured precision when a gold file is given."""
    gold = tmp_path / "gold.jsonl"
    con = duckdb.connect(str(warehouse), read_only=True)
    shas = con.execute("SELECT sha, subject FROM commits WHERE repo = 'github.com/a/core'"
                       ).fetchall()
    con.close()
    gold.write_text("".join(json.dumps({
        "repo": "a/core", "sha": sha, "is_concurrency_fix": not subject.startswith("Docs"),
        "bug_type": "not_concurrency" if subject.startswith("Docs") else "race_condition"})
        + "\n" for sha, subject in shas))
    out = tmp_path / "ds"
    result = _export(warehouse, out, Selection(), SplitPlan(), gold=gold)
    card = (out / "README.md").read_text()
    header = json.loads(card.split("---\n")[1])
    assert {c["split"] for c in header["configs"][0]["data_files"]} == set(result.rows)
    for split, n in result.rows.items():
        assert f"| {split} | {n} |" in card
    for text in ("github.com/a/core | MIT | LICENSE", "Apache-2.0", "elixir", "erlang",
                 "race_condition", "heuristic/rules-", LLM, "precision of", "gold.jsonl",
                 "Known limits"):
        assert text in card, text
    assert "GPL" not in card and "mystery" not in card


def test_empty_export_and_replacing_an_export(warehouse: Path, tmp_path: Path) -> None:
    """No matching row gives a card saying so; a second export replaces the first whole."""
    out = tmp_path / "ds"
    _export(warehouse, out, formats=ALL_FORMATS)
    result = _export(warehouse, out, Selection(bug_types=("livelock",)))
    assert result.total == 0 and not (out / "data").exists() and not (out / "hf").exists()
    assert "No pair matched" in (out / "README.md").read_text()
    assert not any(p.name.startswith(".") for p in tmp_path.iterdir())


def test_export_reads_a_read_only_warehouse(warehouse: Path, tmp_path: Path) -> None:
    """Exports need no write access to the warehouse file."""
    copy = tmp_path / "ro.duckdb"
    shutil.copy(warehouse, copy)
    copy.chmod(0o444)
    con = connect(copy, read_only=True)
    try:
        assert export_dataset(con, tmp_path / "ds", Selection(), SplitPlan()).total > 0
    finally:
        con.close()


def test_build_repo_groups_and_assignment() -> None:
    """Linked repositories form one group; a group's split is a draw from its name and the
    seed alone, near the fractions over many groups, and another seed draws anew."""
    groups = build_repo_groups(["a", "b", "c", "d"], [["a", "c"], ["c", "d"]])
    assert groups == {"a": "a", "b": "b", "c": "a", "d": "a"}
    many = [f"r{i}" for i in range(2_000)]
    counts = {s: 0 for s in SPLITS}
    for s in assign_groups(many, (0.8, 0.1, 0.1), seed=7).values():
        counts[s] += 1
    assert 1_520 < counts["train"] < 1_680 and 140 < counts["test"] < 260
    assert assign_groups(many, (0.8, 0.1, 0.1), 7) != assign_groups(many, (0.8, 0.1, 0.1), 8)
    alone, among_others = (assign_groups(g, (0.8, 0.1, 0.1), 3)["x"]
                           for g in (["x"], ["x", *many]))
    assert alone == among_others  # no other repository changes a repository's split


def test_every_level_puts_a_repository_in_the_same_split(warehouse: Path,
                                                         tmp_path: Path) -> None:
    """File- and function-level exports of one warehouse agree on every repository's
    split, for several seeds; a split left empty is said, with why."""
    for seed in range(4):
        plan = SplitPlan(seed=seed)
        files = _export(warehouse, tmp_path / f"f{seed}", plan=plan)
        functions = _export(warehouse, tmp_path / f"g{seed}",
                            Selection(level=ExportLevel.FUNCTION), plan=plan)
        of_file = {r["repo"]: r["split"] for r in _rows(tmp_path / f"f{seed}")}
        of_function = {r["repo"]: r["split"] for r in _rows(tmp_path / f"g{seed}")}
        assert all(of_file[r] == s for r, s in of_function.items())
        for result in (files, functions):
            assert set(result.empty) == {s for s in SPLITS if s not in result.rows}
            assert all("repository groups" in why for why in result.empty.values())


def test_batches_are_bounded_by_bytes_as_well_as_rows() -> None:
    """A batch ends at its row count or its byte budget; a row larger than the budget is a
    batch of its own; every row is in exactly one batch, in order."""
    from warehouse.dataset import _batches

    sizes = [(1, 10), (2, 10), (5, 90), (6, 200), (7, 5), (9, 5), (10, 5)]
    assert list(_batches(sizes, rows=100, limit=100)) == [(1, 2), (5, 5), (6, 6), (7, 10)]
    assert list(_batches(sizes, rows=2, limit=10_000)) == [(1, 2), (5, 6), (7, 9), (10, 10)]
    assert list(_batches([], rows=2, limit=10)) == []


def test_row_groups_hold_a_bounded_amount_of_text(warehouse: Path, tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """With a small byte budget, the Parquet files get one row group per batch, each within
    the budget (or one row), and the same rows as with the default."""
    import warehouse.dataset as dataset

    _export(warehouse, tmp_path / "default")
    monkeypatch.setattr(dataset, "BATCH_BYTES", 2_000)
    monkeypatch.setattr(dataset.iter_split_rows, "__defaults__", (2_048, 2_000))
    _export(warehouse, tmp_path / "small")
    assert sorted(r["id"] for r in _rows(tmp_path / "small")) == \
        sorted(r["id"] for r in _rows(tmp_path / "default"))
    for path in (tmp_path / "small" / "data").glob("*.parquet"):
        meta = pq.ParquetFile(path).metadata
        groups = [meta.row_group(i) for i in range(meta.num_row_groups)]
        assert len(groups) > 1 or groups[0].num_rows == 1
        table = pq.read_table(path, columns=["before", "after", "diff"])
        start = 0
        for group in groups:
            part = table.slice(start, group.num_rows).to_pylist()
            start += group.num_rows
            size = sum(len((r[c] or "").encode()) for r in part for c in r)
            assert group.num_rows == 1 or size <= 2_000


def test_an_export_out_of_memory_is_one_sentence(warehouse: Path, tmp_path: Path) -> None:
    """DuckDB's out-of-memory error reaches the user as one sentence naming the setting."""
    from typer.testing import CliRunner

    from flows.cli import app

    out = CliRunner().invoke(app, ["export", str(tmp_path / "ds"), "-w", str(warehouse),
                                   "--format", "jsonl", "--include-unknown-license"],
                             env={"RACEMINE_EXPORT_MEMORY": "1MB"})
    assert out.exit_code == 1
    assert "RACEMINE_EXPORT_MEMORY" in out.output and "Traceback" not in out.output
    assert not (tmp_path / "ds").exists() and not (tmp_path / ".ds.partial").exists()
