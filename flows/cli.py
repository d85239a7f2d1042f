"""The `racemine` command line: parse options, make one call, turn known errors into a line."""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from datetime import datetime
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from annotators.errors import AnnotatorError
from flows.settings import Settings
from miners.errors import MinerError
from miners.sources import check_spec
from warehouse.errors import WarehouseError

app = typer.Typer(no_args_is_help=True, add_completion=False,
                  help="Mine Elixir and Erlang git history for concurrency-bug fixes.")
console = Console()
err_console = Console(stderr=True)

WarehouseOpt = Annotated[Path | None, typer.Option(
    "--warehouse", "-w", help="DuckDB file [env: RACEMINE_WAREHOUSE; default ./racemine.duckdb]")]


def _settings(warehouse: Path | None) -> Settings:
    return Settings(**({"warehouse": warehouse} if warehouse else {}))


@contextmanager
def _user_errors() -> Iterator[None]:
    """Known failures become one sentence on stderr and exit code 1."""
    try:
        yield
    except (MinerError, AnnotatorError, WarehouseError) as exc:
        err_console.print(f"[red]error:[/red] {exc}", highlight=False)
        raise typer.Exit(1) from None


def _quiet_prefect() -> None:
    # The CLI shows its own progress, summary and one-sentence errors (a failed run is also
    # in the runs table); Prefect's run logs and tracebacks would bury them. Deployments
    # and `--verbose` keep Prefect's usual logging.
    os.environ.setdefault("PREFECT_LOGGING_LEVEL", "CRITICAL")
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    os.environ.setdefault("PREFECT_SERVER_LOGGING_LEVEL", "WARNING")
    os.environ.setdefault("DASK_LOGGING__DISTRIBUTED", "warning")


def _prefect_env(verbose: bool) -> None:
    """Environment for a command that runs a flow; set before Prefect is imported."""
    if not verbose:
        _quiet_prefect()
    # The first temporary server on a machine creates and migrates its database, which can
    # take longer than Prefect's 20 s start-up default on a small or busy machine.
    os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "180")


@contextmanager
def _shared_prefect_api() -> Iterator[None]:
    """One temporary Prefect server whose address worker processes inherit.

    Without PREFECT_API_URL, Prefect starts a temporary server per process, so every Dask
    worker would start its own (about 20 s each); they share this one instead.
    """
    if os.environ.get("PREFECT_API_URL"):
        yield
        return
    from prefect.server.api.server import SubprocessASGIServer
    from prefect.settings import PREFECT_API_URL, temporary_settings

    server = SubprocessASGIServer()
    server.start(timeout=int(os.environ.get(
        "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "180")))
    os.environ["PREFECT_API_URL"] = server.api_url
    try:
        with temporary_settings(updates={PREFECT_API_URL: server.api_url}):
            yield
    finally:
        os.environ.pop("PREFECT_API_URL", None)
        server.stop()


@app.command()
def mine(
    repos: Annotated[list[str], typer.Argument(
        help="Clone URLs (https/ssh), GitHub owner/name, work trees or bare git dirs.")],
    warehouse: WarehouseOpt = None,
    name: Annotated[str | None, typer.Option(
        help="Canonical name for a local path (default: its origin remote, else folder).")
    ] = None,
    patterns: Annotated[Path | None, typer.Option(
        help="TOML pattern file replacing the built-in classifier patterns.")] = None,
    all_branches: Annotated[bool, typer.Option(
        help="Mine every branch, not only HEAD.")] = False,
    dask: Annotated[bool, typer.Option(
        help="Run the mine tasks on a local Dask cluster (writing Parquet shards).")] = False,
    dask_address: Annotated[str | None, typer.Option(
        help="Use this running Dask scheduler instead (workers must share the warehouse's "
             "folder).")] = None,
    verbose: Annotated[bool, typer.Option(help="Show Prefect's run logs.")] = False,
) -> None:
    """Mine repositories into the warehouse and label the new fixes (a Prefect flow)."""
    if name and len(repos) > 1:
        err_console.print("[red]error:[/red] --name applies to one repository; mine the "
                          "others in a separate command")
        raise typer.Exit(2)
    _prefect_env(verbose)
    settings = _settings(warehouse)
    started = time.perf_counter()
    with _user_errors():
        for spec in repos:
            check_spec(spec)  # refuse a bad spec before Prefect starts
        from prefect.task_runners import ThreadPoolTaskRunner

        from flows import progress
        from flows.mine_flow import mine_flow
        from flows.report import summary_table

        sharded = dask or dask_address is not None
        if sharded:
            from prefect_dask import DaskTaskRunner

            runner = DaskTaskRunner(address=dask_address) if dask_address else DaskTaskRunner(
                cluster_kwargs={"n_workers": settings.concurrency, "threads_per_worker": 1})
        else:
            runner = ThreadPoolTaskRunner(max_workers=settings.concurrency)
        with (_shared_prefect_api() if sharded else nullcontext()), \
                progress.live(err_console):
            results = mine_flow.with_options(task_runner=runner)(
                repos, name=name, patterns_file=str(patterns) if patterns else None,
                all_branches=all_branches, warehouse=str(settings.warehouse),
                sharded=sharded)
    console.print(summary_table(results, time.perf_counter() - started))
    for r in results:
        if r.error:
            err_console.print(f"[red]error:[/red] {r.error}", highlight=False)
    console.print(f"warehouse: {settings.warehouse}", highlight=False)
    if any(r.error for r in results):
        raise typer.Exit(1)


@app.command()
def discover(
    warehouse: WarehouseOpt = None,
    language: Annotated[list[str] | None, typer.Option(
        help="GitHub language (repeatable) [default: Elixir and Erlang]")] = None,
    min_stars: Annotated[int, typer.Option(min=0)] = 10,
    pushed_since: Annotated[datetime | None, typer.Option(
        formats=["%Y-%m-%d"], help="Only repositories pushed since this date.")] = None,
    topic: Annotated[list[str] | None, typer.Option(help="Required topic (repeatable).")
                     ] = None,
    include_forks: Annotated[bool, typer.Option()] = False,
    include_archived: Annotated[bool, typer.Option()] = False,
    from_file: Annotated[Path | None, typer.Option(
        "--from", help="A curated list: one repository per line (skips the search).")] = None,
    limit: Annotated[int | None, typer.Option(help="Store at most this many.")] = None,
    verbose: Annotated[bool, typer.Option(help="Show Prefect's run logs.")] = False,
) -> None:
    """Find Elixir and Erlang repositories on GitHub (or in a list) for the repos table."""
    _prefect_env(verbose)
    settings = _settings(warehouse)
    with _user_errors():
        if from_file is not None:
            from flows.discovering import read_repo_list

            read_repo_list(from_file)  # a bad line stops before Prefect starts
        from flows.discover_flow import discover_flow

        stored, requests, cached = discover_flow(
            language, min_stars, pushed_since.date() if pushed_since else None, topic,
            include_forks, include_archived, str(from_file) if from_file else None,
            search=from_file is None, limit=limit, warehouse=str(settings.warehouse))
    console.print(f"{stored:,} repositories stored ({requests:,} API requests, {cached:,} "
                  "answered from cache)", highlight=False)


PipelineSteps = Annotated[list[str] | None, typer.Option(
    "--skip", help="Steps to leave out: discover, mine, annotate, export (repeatable).")]
UnknownLicenseOpt = Annotated[bool, typer.Option(
    "--include-unknown-license", help="Export repositories whose license is unknown too.")]


def _pipeline_parameters(skip: list[str] | None, repos: list[str] | None,
                         repo_list: Path | None, export_dir: Path, warehouse: Path,
                         include_unknown_license: bool) -> dict:
    skipped = set(skip or ())
    unknown = skipped - {"discover", "mine", "annotate", "export"}
    if unknown:
        err_console.print(f"[red]error:[/red] --skip {', '.join(sorted(unknown))}: not a step; "
                          "use discover, mine, annotate or export")
        raise typer.Exit(2)
    for spec in repos or ():
        check_spec(spec)
    return {"discover": "discover" not in skipped, "mine": "mine" not in skipped,
            "annotate": "annotate" not in skipped, "export": "export" not in skipped,
            "repos": list(repos) if repos else None,
            "repo_list": str(repo_list) if repo_list else None,
            "export_dir": str(export_dir), "warehouse": str(warehouse),
            "include_unknown_license": include_unknown_license}


@app.command()
def pipeline(
    warehouse: WarehouseOpt = None,
    skip: PipelineSteps = None,
    repo: Annotated[list[str] | None, typer.Option(
        help="Mine these (default: every stored remote repository).")] = None,
    repo_list: Annotated[Path | None, typer.Option(
        "--from", help="Discover from this curated list instead of searching.")] = None,
    export_dir: Annotated[Path, typer.Option(help="Where the export step writes.")
                          ] = Path("exports"),
    include_unknown_license: UnknownLicenseOpt = False,
    verbose: Annotated[bool, typer.Option(help="Show Prefect's run logs.")] = False,
) -> None:
    """Run discover → mine → annotate → export once (the scheduled flow, now)."""
    _prefect_env(verbose)
    settings = _settings(warehouse)
    with _user_errors():
        params = _pipeline_parameters(skip, repo, repo_list, export_dir, settings.warehouse,
                                      include_unknown_license)
        from flows.pipeline_flow import pipeline_flow

        done = pipeline_flow(**params)
    for step, result in done.items():
        console.print(f"{step}: {result}", highlight=False)


@app.command()
def serve(
    cron: Annotated[str, typer.Option(help='Schedule, e.g. "0 3 * * *" (nightly at 03:00).')],
    name: Annotated[str, typer.Option(help="Deployment name.")] = "racemine-nightly",
    warehouse: WarehouseOpt = None,
    skip: PipelineSteps = None,
    repo: Annotated[list[str] | None, typer.Option(help="Mine these on every run.")] = None,
    repo_list: Annotated[Path | None, typer.Option("--from")] = None,
    export_dir: Annotated[Path, typer.Option()] = Path("exports"),
    include_unknown_license: UnknownLicenseOpt = False,
) -> None:
    """Serve the pipeline on a schedule against the Prefect server in PREFECT_API_URL."""
    _prefect_env(verbose=True)
    settings = _settings(warehouse)
    with _user_errors():
        params = _pipeline_parameters(skip, repo, repo_list, export_dir.resolve(),
                                      settings.warehouse.resolve(), include_unknown_license)
        from flows.pipeline_flow import pipeline_flow

        # The schedule keeps running when this process stops (a restart must not pause
        # the nightly run).
        pipeline_flow.serve(name=name, cron=cron, parameters=params, pause_on_shutdown=False)


@app.command()
def annotate(
    warehouse: WarehouseOpt = None,
    repo: Annotated[list[str] | None, typer.Option(
        help="Only this repository (canonical name); repeatable.")] = None,
    model: Annotated[str | None, typer.Option(help="[env: RACEMINE_LLM_MODEL]")] = None,
    verify: Annotated[bool, typer.Option(
        help="Ask a skeptical reviewer to check each fix's event sequence.")] = False,
    concurrency: Annotated[int | None, typer.Option(
        help="Requests in flight [env: RACEMINE_LLM_CONCURRENCY; default 8]")] = None,
    max_usd: Annotated[float | None, typer.Option(help="Stop once this much is spent.")] = None,
    max_tokens: Annotated[int | None, typer.Option(help="Stop after this many tokens.")] = None,
    limit: Annotated[int | None, typer.Option(help="Label at most this many commits.")] = None,
    retry_failed: Annotated[bool, typer.Option(
        help="Also retry commits whose earlier label failed.")] = False,
    verbose: Annotated[bool, typer.Option(help="Show Prefect's run logs.")] = False,
) -> None:
    """Label stored commits with an LLM (any OpenAI-compatible endpoint; a Prefect flow)."""
    _prefect_env(verbose)
    settings = _settings(warehouse)
    with _user_errors():
        from flows.annotate_flow import annotate_flow

        result = annotate_flow(repo, model=model, verify=verify, concurrency=concurrency,
                               max_usd=max_usd, max_tokens=max_tokens, limit=limit,
                               retry_failed=retry_failed, warehouse=str(settings.warehouse))
    s = result.summary
    console.print(
        f"{result.annotator}: {result.commits:,} commits to label, {result.cache_hits:,} from "
        f"cache, {s.labeled:,} labeled, {s.failed:,} failed, {s.requests:,} requests "
        f"({s.retries:,} retries), {s.tokens_in + s.tokens_out:,} tokens, ~${s.cost_usd:.4f}",
        highlight=False)
    if s.stopped_by_budget:
        console.print(f"budget reached: {s.not_started:,} commits left for the next run")


class OutputFormat(StrEnum):
    TABLE = "table"
    CSV = "csv"
    JSON = "json"


@app.command()
def sql(
    query: Annotated[str, typer.Argument(help="SQL to run against the warehouse (read-only).")],
    warehouse: WarehouseOpt = None,
    format: Annotated[OutputFormat, typer.Option("--format", "-f")] = OutputFormat.TABLE,
) -> None:
    """Run a read-only SQL query against the warehouse."""
    from flows.report import render_rows
    from warehouse.db import open_warehouse
    from warehouse.queries import run_sql

    with _user_errors(), open_warehouse(_settings(warehouse).warehouse, read_only=True) as con:
        columns, rows = run_sql(con, query)
    render_rows(console, columns, rows, format.value)


@app.command()
def stats(warehouse: WarehouseOpt = None,
          cost: Annotated[bool, typer.Option(
              "--cost", help="LLM requests, retries, tokens and estimated USD instead.")
          ] = False) -> None:
    """Counts per repository, bug type, language and year (or LLM cost with --cost)."""
    from flows.report import render_rows, render_vertical
    from warehouse.db import open_warehouse
    from warehouse.queries import cost as cost_query
    from warehouse.queries import stats as stats_query

    with _user_errors(), open_warehouse(_settings(warehouse).warehouse, read_only=True) as con:
        tables = {"LLM cost": cost_query(con)} if cost else stats_query(con)
    for title, (columns, rows) in tables.items():
        if cost:
            render_vertical(console, columns, rows, title)
        else:
            render_rows(console, columns, rows, "table", title=title)


def _date_option(help_text: str) -> object:
    return typer.Option(formats=["%Y-%m-%d"], help=help_text)


def _choice(kind: type[StrEnum], value: str | None, option: str) -> StrEnum | None:
    if value is None:
        return None
    try:
        return kind(value)
    except ValueError:
        choices = ", ".join(k.value for k in kind)
        err_console.print(f"[red]error:[/red] {option} {value!r}: use one of {choices}")
        raise typer.Exit(2) from None


def _fractions(text: str) -> tuple[float, float, float]:
    try:
        parts = tuple(float(p) for p in text.split(","))
    except ValueError:
        parts = ()
    if len(parts) != 3 or min(parts) < 0 or sum(parts) <= 0:
        err_console.print(f"[red]error:[/red] --fractions {text!r}: give three shares for "
                          "train,validation,test, such as 0.8,0.1,0.1")
        raise typer.Exit(2)
    return parts  # type: ignore[return-value]


@app.command()
def export(
    out: Annotated[Path, typer.Argument(help="Folder to write the dataset into.")],
    formats: Annotated[list[str] | None, typer.Option(
        "--format", "-f", help="Also write jsonl, hf (datasets.load_from_disk) or dspy "
        "(repeatable); Parquet in data/ is always written.")] = None,
    level: Annotated[str, typer.Option(
        help="file: one row per changed file; function: one row per changed function")
    ] = "file",
    warehouse: WarehouseOpt = None,
    all_labels: Annotated[bool, typer.Option(
        "--all", help="Also export pairs labeled as not a concurrency fix.")] = False,
    duplicates: Annotated[bool, typer.Option(
        "--duplicates", help="Keep every copy of a fix found in several branches or forks.")
    ] = False,
    language: Annotated[list[str] | None, typer.Option(help="elixir or erlang (repeatable)")
                        ] = None,
    bug_type: Annotated[list[str] | None, typer.Option(help="Bug type (repeatable).")] = None,
    scope: Annotated[str | None, typer.Option(help="production or test")] = None,
    min_confidence: Annotated[float, typer.Option(min=0.0, max=1.0)] = 0.0,
    annotator: Annotated[str | None, typer.Option(
        help="Labels of this annotator id, or of ids starting with it (e.g. llm/gpt-4o).")
    ] = None,
    verified: Annotated[bool, typer.Option(
        "--verified", help="Only labels the reviewer (annotate --verify) found plausible.")
    ] = False,
    since: Annotated[datetime | None, _date_option("Commits authored on or after.")] = None,
    until: Annotated[datetime | None, _date_option("Commits authored on or before.")] = None,
    licenses: Annotated[list[str] | None, typer.Option(
        "--license", help="SPDX ids to allow (repeatable; default: common permissive ones).")
    ] = None,
    include_unknown_license: Annotated[bool, typer.Option(
        "--include-unknown-license", help="Also export repositories whose license is unknown.")
    ] = False,
    split_by: Annotated[str, typer.Option(help="repo, time or none")] = "repo",
    fractions: Annotated[str, typer.Option(help="train,validation,test shares (by repo)")
                         ] = "0.8,0.1,0.1",
    seed: Annotated[int, typer.Option(help="Seed for the split by repository.")] = 0,
    validation_after: Annotated[datetime | None, _date_option(
        "By time: validation from this day.")] = None,
    test_after: Annotated[datetime | None, _date_option("By time: test from this day.")
                          ] = None,
    partition_by: Annotated[str | None, typer.Option(
        help="Partition the Parquet files by language or bug_type.")] = None,
    gold: Annotated[Path | None, typer.Option(
        "--eval", help="Gold JSONL: measure the labels and report it in the dataset card.")
    ] = None,
) -> None:
    """Export labeled pairs as a dataset folder: splits, formats, provenance, dataset card."""
    from flows.exporting import run_export
    from warehouse.dataset import PERMISSIVE_LICENSES, ExportLevel, Selection
    from warehouse.formats import ExportFormat, PartitionBy
    from warehouse.splits import SplitBy, SplitPlan

    plan = SplitPlan(by=_choice(SplitBy, split_by, "--split-by"), fractions=_fractions(fractions),
                     seed=seed, validation_after=validation_after and validation_after.date(),
                     test_after=test_after and test_after.date())
    if scope not in (None, "production", "test"):
        err_console.print(f"[red]error:[/red] --scope {scope!r}: use production or test")
        raise typer.Exit(2)
    if plan.by == SplitBy.TIME and plan.test_after is None:
        err_console.print("[red]error:[/red] --split-by time needs --test-after DATE "
                          "(and optionally --validation-after DATE)")
        raise typer.Exit(2)
    selection = Selection(
        level=_choice(ExportLevel, level, "--level"), fixes_only=not all_labels,
        duplicates=duplicates, languages=tuple(language or ()),
        bug_types=tuple(bug_type or ()), scope=scope, min_confidence=min_confidence,
        annotator=annotator, verified_only=verified, since=since and since.date(),
        until=until and until.date(), licenses=tuple(licenses or PERMISSIVE_LICENSES),
        include_unknown_license=include_unknown_license)
    chosen = [_choice(ExportFormat, f, "--format") for f in formats or ()]
    with _user_errors():
        settings = _settings(warehouse)
        result = run_export(settings.warehouse, out, selection, plan, chosen,
                            partition_by=_choice(PartitionBy, partition_by, "--partition-by"),
                            gold=gold, memory_limit=settings.export_memory)
    sizes = ", ".join(f"{split} {n:,}" for split, n in result.rows.items()) or "no rows"
    console.print(f"wrote {result.total:,} {selection.level.value} pairs to {out} ({sizes}); "
                  f"see {out / 'README.md'}", highlight=False)


@app.command("eval")
def eval_command(
    gold: Annotated[Path, typer.Argument(help="JSONL of labeled commits (devset format).")],
    warehouse: WarehouseOpt = None,
    annotator: Annotated[str | None, typer.Option(
        help="Annotator id to measure (default: each commit's newest label).")] = None,
    strict: Annotated[bool, typer.Option(
        help="Leave out gold rows labeled with low confidence.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
) -> None:
    """Precision and recall of "kept as a concurrency fix", per-pattern precision, bug-type
    accuracy and confusion matrix, with 95% intervals, against a gold file."""
    from flows.evaluating import measure
    from flows.report import print_eval

    with _user_errors():
        report = measure(_settings(warehouse).warehouse, gold, annotator, strict)
    if as_json:
        console.out(report.to_json(), highlight=False)
    else:
        print_eval(console, report)


def main() -> None:
    app(prog_name="racemine")


if __name__ == "__main__":
    sys.exit(main())
