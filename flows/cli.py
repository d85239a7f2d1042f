"""The `racemine` command line: parse options, make one call, turn known errors into a line.

Every command runs its job directly in this process. With PREFECT_API_URL set (or
`--prefect`), mine, discover, annotate, export and pipeline run the same jobs as tracked
Prefect flow runs instead. Heavy imports (prefect, pyarrow, openai, tree-sitter) happen
inside the commands that use them, so `--help`, `sql` and `stats` start quickly.
"""

from __future__ import annotations

import os
import sys
import time
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console

from flows.interrupts import stopping_on_interrupt
from flows.output import OutputFormat

if TYPE_CHECKING:
    from flows.jobs.pipeline import PipelinePlan
    from flows.settings import Settings

app = typer.Typer(no_args_is_help=True, add_completion=False,
                  help="Mine Elixir and Erlang git history for concurrency-bug fixes.")
console = Console()
err_console = Console(stderr=True)

WarehouseOpt = Annotated[Path | None, typer.Option(
    "--warehouse", "-w", help="DuckDB file [env: RACEMINE_WAREHOUSE; default ./racemine.duckdb]")]
PrefectOpt = Annotated[bool, typer.Option(
    "--prefect", help="Run as a tracked Prefect flow run (also when PREFECT_API_URL is set); "
    "needs a running Prefect server.")]
VerboseOpt = Annotated[bool, typer.Option(help="Show Prefect's run logs (tracked runs).")]


def _settings(warehouse: Path | None) -> Settings:
    from flows.settings import Settings

    return Settings.load(warehouse)


def _fail(message: str, code: int = 1) -> typer.Exit:
    err_console.print(f"[red]error:[/red] {message}", highlight=False)
    return typer.Exit(code)


@contextmanager
def _user_errors() -> Iterator[None]:
    """Known failures become one sentence on stderr and exit code 1."""
    from annotators.errors import AnnotatorError
    from miners.errors import MinerError
    from warehouse.errors import WarehouseError

    try:
        yield
    except (MinerError, AnnotatorError, WarehouseError) as exc:
        raise _fail(str(exc)) from None


def _tracked(prefect: bool, verbose: bool) -> bool:
    """Whether this command runs as a Prefect flow run: PREFECT_API_URL is set, or --prefect
    and the active Prefect profile names a server. racemine never starts a server itself."""
    if not (prefect or os.environ.get("PREFECT_API_URL")):
        return False
    if not verbose:
        # The CLI shows its own progress, summary and one-sentence errors (a failed run is
        # also in the runs table and the Prefect UI); Prefect's run logs would bury them.
        os.environ.setdefault("PREFECT_LOGGING_LEVEL", "CRITICAL")
        os.environ.setdefault("DASK_LOGGING__DISTRIBUTED", "warning")
    from flows.tracked.states import server_configured

    if not server_configured():
        raise _fail("--prefect: no Prefect server is configured; start one (uv run prefect "
                    "server start) and set PREFECT_API_URL=http://127.0.0.1:4200/api, or run "
                    "without --prefect")
    return True


def _exit_for(status: str) -> None:
    if status != "completed":
        raise typer.Exit(1)


@app.command()
def mine(
    repos: Annotated[list[str], typer.Argument(
        help="Clone URLs (https/ssh), GitHub owner/name, work trees or bare git dirs; "
             "PATH=owner/name names a local one.")],
    warehouse: WarehouseOpt = None,
    name: Annotated[str | None, typer.Option(
        help="Name for a single local path (default: its origin remote, else "
             "local/<folder>); for several, write PATH=owner/name.")] = None,
    patterns: Annotated[Path | None, typer.Option(
        help="TOML pattern file replacing the built-in classifier patterns.")] = None,
    all_branches: Annotated[bool, typer.Option(
        help="Mine every branch, not only HEAD.")] = False,
    dask: Annotated[bool, typer.Option(
        help="Run the mine tasks on a local Dask cluster (tracked runs; Parquet shards).")
    ] = False,
    dask_address: Annotated[str | None, typer.Option(
        help="Use this running Dask scheduler instead (workers must share the warehouse's "
             "folder).")] = None,
    prefect: PrefectOpt = False,
    verbose: VerboseOpt = False,
) -> None:
    """Mine repositories into the warehouse and label the new fixes."""
    if name and len(repos) > 1:
        raise _fail("--name applies to one repository; name several local ones as "
                    "PATH=owner/name", code=2)
    sharded = dask or dask_address is not None
    settings = _settings(warehouse)
    started = time.perf_counter()
    with _user_errors():
        from flows.jobs.mine import parse_repo_args
        from flows.progress import live

        specs = parse_repo_args(repos, name)  # a bad spec stops before any work
        if not _tracked(prefect, verbose):
            if sharded:
                raise _fail("--dask runs the mine tasks as a tracked Prefect flow: start a "
                            "Prefect server (uv run prefect server start) and set "
                            "PREFECT_API_URL=http://127.0.0.1:4200/api", code=2)
            from flows.jobs.mine import mine_repos

            with live(err_console) as progress:
                report = mine_repos(specs, settings, patterns_file=patterns,
                                    all_branches=all_branches, progress=progress)
            results, status = report.results, report.status
        else:
            from flows.tracked.mine import run_tracked_mine

            with live(err_console):
                results, status = run_tracked_mine(specs, settings, patterns, all_branches,
                                                   dask=sharded, dask_address=dask_address)
    from flows.output import print_summary

    print_summary(console, results, time.perf_counter() - started, status)
    console.print(f"warehouse: {settings.warehouse}", highlight=False)
    _exit_for(status)


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
    prefect: PrefectOpt = False,
    verbose: VerboseOpt = False,
) -> None:
    """Find Elixir and Erlang repositories on GitHub (or in a list) for the repos table."""
    settings = _settings(warehouse)
    with _user_errors():
        from flows.jobs.discover import read_repo_list
        from miners.github import SearchQuery

        if from_file is not None:
            read_repo_list(from_file)  # a bad line stops before any request
        query = None if from_file is not None else SearchQuery(
            tuple(language or ("Elixir", "Erlang")), min_stars,
            pushed_since.date() if pushed_since else None, tuple(topic or ()), include_forks,
            include_archived)
        if _tracked(prefect, verbose):
            from flows.tracked.discover import discover_flow

            found = discover_flow(query, from_file, limit, warehouse=str(settings.warehouse))
        else:
            from flows.jobs.discover import discover_repos

            found = discover_repos(settings, query, from_file, limit)
    console.print(f"{found.stored:,} repositories stored ({found.requests:,} API requests, "
                  f"{found.not_modified:,} answered from cache)", highlight=False)


PipelineSteps = Annotated[list[str] | None, typer.Option(
    "--skip", help="Steps to leave out: discover, mine, annotate, szz, export "
    "(repeatable).")]
UnknownLicenseOpt = Annotated[bool, typer.Option(
    "--include-unknown-license", help="Export repositories whose license is unknown too.")]


def _pipeline_plan(skip: list[str] | None, repos: list[str] | None, repo_list: Path | None,
                   export_dir: Path, include_unknown_license: bool) -> PipelinePlan:
    from flows.jobs.mine import parse_repo_args
    from flows.jobs.pipeline import STEPS, PipelinePlan

    skipped = set(skip or ())
    unknown = skipped - set(STEPS)
    if unknown:
        raise _fail(f"--skip {', '.join(sorted(unknown))}: not a step; use discover, mine, "
                    "annotate, szz or export", code=2)
    parse_repo_args(repos or [])  # a bad spec stops before any work
    return PipelinePlan(*(step not in skipped for step in STEPS),
                        repos=tuple(repos) if repos else None, repo_list=repo_list,
                        export_dir=export_dir, include_unknown_license=include_unknown_license)


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
    prefect: PrefectOpt = False,
    verbose: VerboseOpt = False,
) -> None:
    """Run discover → mine → annotate → szz → export once (the scheduled flow, now)."""
    settings = _settings(warehouse)
    with _user_errors():
        plan = _pipeline_plan(skip, repo, repo_list, export_dir, include_unknown_license)
        from flows.jobs.pipeline import failed_steps

        if _tracked(prefect, verbose):
            from flows.tracked.pipeline import pipeline_flow
            from flows.tracked.states import value_of

            done = value_of(pipeline_flow(**plan.parameters(settings.warehouse),
                                          return_state=True))
        else:
            from flows.jobs.pipeline import run_pipeline
            from flows.progress import live

            with live(err_console) as progress:
                done = run_pipeline(settings, plan, progress)
    for step, result in done.items():
        console.print(f"{step}: {result}", highlight=False)
    if failed_steps(done):
        raise typer.Exit(1)


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
    settings = _settings(warehouse)
    with _user_errors():
        # Paths are made absolute: the served runs start wherever the runner is.
        plan = _pipeline_plan(skip, repo, repo_list and repo_list.resolve(),
                              export_dir.resolve(), include_unknown_license)
        _tracked(prefect=True, verbose=True)
        from flows.tracked.pipeline import pipeline_flow

        parameters = plan.parameters(settings.warehouse.resolve())
        console.print(f"serving pipeline/{name} on {cron!r}; stop with Ctrl-C (the schedule "
                      "stays on the server)", highlight=False)
        # Prefect's runner leaves a coroutine unawaited when SIGTERM stops it; its warning
        # would be the last thing a stopped `serve` prints.
        warnings.filterwarnings("ignore", "coroutine .* was never awaited", RuntimeWarning)
        # The schedule keeps running when this process stops (a restart must not pause
        # the nightly run).
        pipeline_flow.serve(name=name, cron=cron, parameters=parameters,
                            pause_on_shutdown=False, print_starting_message=False)


@app.command()
def annotate(
    warehouse: WarehouseOpt = None,
    repo: Annotated[list[str] | None, typer.Option(
        help="Only this repository (canonical name); repeatable.")] = None,
    model: Annotated[str | None, typer.Option(help="[env: RACEMINE_LLM_MODEL]")] = None,
    verify: Annotated[bool, typer.Option(
        help="Ask a skeptical reviewer to check each fix's event sequence, step by step.")
    ] = False,
    verify_negatives: Annotated[float, typer.Option(
        min=0.0, max=1.0, help="With --verify, also review this share of the labels that say "
        "\"not a fix\" (the same commits every run).")] = 0.0,
    concurrency: Annotated[int | None, typer.Option(
        help="Requests in flight [env: RACEMINE_LLM_CONCURRENCY; default 8]")] = None,
    max_usd: Annotated[float | None, typer.Option(help="Stop once this much is spent.")] = None,
    max_tokens: Annotated[int | None, typer.Option(help="Stop after this many tokens.")] = None,
    limit: Annotated[int | None, typer.Option(help="Label at most this many commits.")] = None,
    retry_failed: Annotated[bool, typer.Option(
        help="Also retry commits whose earlier label failed.")] = False,
    batch: Annotated[bool, typer.Option(
        "--batch", help="Submit the commits as a Batch API batch (half price); a later "
        "annotate collects it.")] = False,
    prefect: PrefectOpt = False,
    verbose: VerboseOpt = False,
) -> None:
    """Label stored commits with an LLM (any OpenAI-compatible endpoint)."""
    settings = _settings(warehouse)
    options = {"repos": repo, "model": model, "verify": verify,
               "verify_negatives": verify_negatives, "concurrency": concurrency,
               "max_usd": max_usd, "max_tokens": max_tokens, "limit": limit,
               "retry_failed": retry_failed, "batch": batch}
    with _user_errors():
        if _tracked(prefect, verbose):
            from flows.tracked.annotate import annotate_flow
            from flows.tracked.states import value_of

            result = value_of(annotate_flow(**options, warehouse=str(settings.warehouse),
                                            return_state=True))
        else:
            from flows.jobs.annotate import annotate as annotate_job

            result = annotate_job(settings, **options, warn=lambda message: err_console.print(
                f"[yellow]warning:[/yellow] {message}", highlight=False))
    s = result.summary
    console.print(
        f"{result.annotator}\n  {result.commits:,} commits to label · {result.cache_hits:,} "
        f"from cache · {s.labeled:,} labeled · {s.failed:,} failed\n  {s.requests:,} requests "
        f"({s.retries:,} retries) · {s.tokens_in + s.tokens_out:,} tokens "
        f"({s.cached_tokens:,} cached) · ~${s.cost_usd:.4f}", highlight=False)
    if s.stopped_by_budget:
        console.print(f"budget reached: {s.not_started:,} commits left for the next run")
    if result.batch_submitted:
        console.print(f"  {result.batch_submitted:,} commits submitted as a batch; run "
                      "`racemine annotate` again to collect it", highlight=False)
    if result.batch_pending:
        console.print(f"  {result.batch_pending:,} commits in batches the server is still "
                      "working on; run `racemine annotate` again later", highlight=False)
    if result.status == "failed":  # commits that failed alone are retried by the next run
        raise typer.Exit(1)


@app.command()
def szz(
    warehouse: WarehouseOpt = None,
    repo: Annotated[list[str] | None, typer.Option(
        help="Only this repository (canonical name); repeatable.")] = None,
    every_commit: Annotated[bool, typer.Option(
        "--all", help="Trace every stored commit, not only the concurrency fixes.")] = False,
    redo: Annotated[bool, typer.Option(
        help="Trace again what was traced before.")] = False,
    prefect: PrefectOpt = False,
    verbose: VerboseOpt = False,
) -> None:
    """Find the commits that introduced each fix's bug (SZZ: blame of the lines it changed)."""
    settings = _settings(warehouse)
    with _user_errors():
        if _tracked(prefect, verbose):
            from flows.tracked.states import value_of
            from flows.tracked.szz import szz_flow

            result = value_of(szz_flow(repos=repo, every_commit=every_commit, redo=redo,
                                       warehouse=str(settings.warehouse), return_state=True))
        else:
            from flows.jobs.szz import trace_origins
            from flows.progress import live

            with live(err_console) as progress:
                result = trace_origins(settings, repo, every_commit=every_commit, redo=redo,
                                       progress=progress)
    console.print(f"traced {result.traced:,} commits in {result.seconds:.1f} s\n"
                  f"  {result.found:,} with candidates · {result.none:,} without (reason "
                  f"stored) · {result.failed:,} failed", highlight=False)
    for error in result.errors:
        err_console.print(f"[red]error:[/red] {error}", highlight=False)
    _exit_for(result.status)


@app.command()
def review(
    warehouse: WarehouseOpt = None,
    port: Annotated[int, typer.Option(help="Port to serve on.")] = 8765,
    host: Annotated[str, typer.Option(
        help="Address to serve on; anything but 127.0.0.1 shows the warehouse to others.")
    ] = "127.0.0.1",
    export_gold: Annotated[Path | None, typer.Option(
        "--export-gold", help="Write the decisions as a gold file for `racemine eval`, "
        "and stop.")] = None,
) -> None:
    """Read each fix beside its label in the browser; accept, reject or correct it."""
    settings = _settings(warehouse)
    with _user_errors():
        from warehouse.db import open_warehouse

        with open_warehouse(settings.warehouse):  # made or upgraded once, here
            pass
        if export_gold is not None:
            from flows.jobs.review import export_gold as write_gold

            count = write_gold(settings, export_gold)
            console.print(f"{count:,} decisions written to {export_gold}", highlight=False)
            return
    import uvicorn

    from flows.web.app import create_app

    console.print(f"racemine review: http://{host}:{port}/  (Ctrl-C stops)", highlight=False)
    uvicorn.run(create_app(settings), host=host, port=port, log_level="warning")


@app.command()
def sql(
    query: Annotated[str, typer.Argument(help="SQL to run against the warehouse (read-only).")],
    warehouse: WarehouseOpt = None,
    format: Annotated[OutputFormat, typer.Option("--format", "-f")] = OutputFormat.TABLE,
) -> None:
    """Run a read-only SQL query against the warehouse."""
    from flows.output import render_rows
    from warehouse.db import query_warehouse
    from warehouse.queries import run_sql

    with _user_errors(), query_warehouse(_settings(warehouse).warehouse) as con:
        columns, rows = run_sql(con, query)
    render_rows(console, columns, rows, format.value)


@app.command()
def stats(warehouse: WarehouseOpt = None,
          cost: Annotated[bool, typer.Option(
              "--cost", help="LLM requests, retries, tokens and estimated USD instead.")
          ] = False) -> None:
    """Counts per repository, bug type, language and year (or LLM cost with --cost)."""
    from flows.output import render_rows, render_vertical
    from warehouse.db import query_warehouse
    from warehouse.queries import cost as cost_query
    from warehouse.queries import stats as stats_query

    with _user_errors(), query_warehouse(_settings(warehouse).warehouse) as con:
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
        "--verified", help="Only labels that passed the trace checks and, when a reviewer "
        "(annotate --verify) looked, were found plausible.")
    ] = False,
    reviewed: Annotated[bool, typer.Option(
        "--reviewed", help="Only commits a person accepted or corrected in `racemine review`, "
        "with the corrections applied.")] = False,
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
    prefect: PrefectOpt = False,
    verbose: VerboseOpt = False,
) -> None:
    """Export labeled pairs as a dataset folder: splits, formats, provenance, dataset card."""
    from flows.jobs.export import run_export
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
        annotator=annotator, verified_only=verified, reviewed_only=reviewed,
        since=since and since.date(),
        until=until and until.date(), licenses=tuple(licenses or PERMISSIVE_LICENSES),
        include_unknown_license=include_unknown_license)
    chosen = [_choice(ExportFormat, f, "--format") for f in formats or ()]
    with _user_errors():
        settings = _settings(warehouse)
        partition = _choice(PartitionBy, partition_by, "--partition-by")
        if _tracked(prefect, verbose):
            from flows.tracked.export import export_dataset_flow

            result = export_dataset_flow(out, selection, plan, chosen, partition, gold,
                                         warehouse=str(settings.warehouse))
        else:
            result = run_export(settings.warehouse, out, selection, plan, chosen,
                                partition_by=partition, gold=gold,
                                memory_limit=settings.export_memory)
    sizes = ", ".join(f"{split} {n:,}" for split, n in result.rows.items()) or "no rows"
    console.print(f"wrote {result.total:,} {selection.level.value} pairs to {out} ({sizes}); "
                  f"see {out / 'README.md'}", highlight=False)
    for split, why in result.empty.items():
        err_console.print(f"[yellow]note:[/yellow] the {split} split is empty: {why}",
                          highlight=False)


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
    from flows.jobs.evaluate import measure
    from flows.output import print_eval

    with _user_errors():
        report = measure(_settings(warehouse).warehouse, gold, annotator, strict)
    if as_json:
        console.out(report.to_json(), highlight=False)
    else:
        print_eval(console, report)


def main() -> None:
    # racemine uses no pydantic plugins, and looking them up reads the entry points of every
    # installed package: ~50 ms of each command. A user who wants them sets the variable.
    os.environ.setdefault("PYDANTIC_DISABLE_PLUGINS", "__all__")
    with stopping_on_interrupt():
        app(prog_name="racemine")


if __name__ == "__main__":
    sys.exit(main())
