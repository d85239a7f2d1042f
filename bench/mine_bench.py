"""Time racemine's mining of a local repository against the git floor, in one run.

    uv run python bench/mine_bench.py PATH_TO_REPO [--repeat 3] [--reader]

The floor is what plain git needs for the same answer: `git log -P --grep` with the
classifier's patterns plus the full patches of the commits it matches, in one process.
racemine's core (scan, classify, extract, store, label into a fresh DuckDB file) is timed
in this process after imports; the full `racemine mine` command (interpreter, imports and
start-up included) is timed as a subprocess and reported beside it.

With --reader, the full command is timed alone, beside a `racemine sql "SELECT count(*)
FROM commits"` started every second, and beside the same query asked every second from one
long-lived process, in turns: the mining process answers them (see warehouse.host). It
reports what each costs the mine and whether every query was answered.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path


def _best(fn, repeat: int) -> tuple[float, object]:
    times, result = [], None
    for _ in range(repeat):
        started = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - started)
    return min(times), result


def floor(git_dir: str, grep: str) -> int:
    """git log --grep with the patterns, plus the full patch of every matching commit."""
    proc = subprocess.run(["git", "-C", git_dir, "log", "-P", f"--grep={grep}", "-p",
                           "--format=%H%n%B", "HEAD"], capture_output=True, check=True)
    return len(proc.stdout)


def core(git_dir: str, work: Path) -> tuple[int, int, int]:
    from flows.jobs.mine import mine_and_label
    from flows.settings import Settings
    from miners.classify import load_pattern_set
    from miners.git import open_local

    settings = Settings(warehouse=work / f"bench-{time.monotonic_ns()}.duckdb")
    result = mine_and_label(open_local(git_dir), settings, load_pattern_set(), "bench")
    return result.matches, result.pairs, result.labels


def _run(args: list[str]) -> tuple[float, float, int, str]:
    """Run a command: (wall seconds, its CPU seconds, exit code, stdout)."""
    started = time.perf_counter()
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    assert proc.stdout is not None
    out = proc.stdout.read()
    _, status, usage = os.wait4(proc.pid, 0)  # this child's own resource usage
    proc.returncode = os.waitstatus_to_exitcode(status)
    return (time.perf_counter() - started, usage.ru_utime + usage.ru_stime, proc.returncode,
            out)


def _mine_cli(git_dir: str, warehouse: Path, cpu: list[float] | None = None) -> float:
    wall, used, code, _ = _run([sys.executable, "-m", "flows", "mine", git_dir,
                                "--warehouse", str(warehouse)])
    if code != 0:
        raise SystemExit(f"racemine mine {git_dir} failed (exit code {code})")
    if cpu is not None:
        cpu.append(used)
    return wall


_READER_CPU: list[float] = []  # CPU seconds of each `racemine sql` process


def _sql_process(warehouse: Path) -> str | None:
    _, used, code, out = _run([sys.executable, "-m", "flows", "sql",
                               "SELECT count(*) AS n FROM commits", "--format", "csv",
                               "--warehouse", str(warehouse)])
    _READER_CPU.append(used)
    return out.split()[-1] if code == 0 and out.split() else None


def _sql_in_process(warehouse: Path) -> str | None:
    from warehouse.db import query_warehouse
    from warehouse.errors import WarehouseError
    from warehouse.queries import run_sql

    try:
        with query_warehouse(warehouse) as con:
            return str(run_sql(con, "SELECT count(*) FROM commits")[1][0][0])
    except WarehouseError:
        return None


def _read_every_second(ask: Callable[[Path], str | None], warehouse: Path,
                       done: threading.Event, answers: list[str | None]) -> None:
    """ask once a second until done: each answer's count, None when it failed."""
    while not done.is_set():
        ticked = time.monotonic()
        if warehouse.exists():
            answer = ask(warehouse)
            if not done.is_set():
                answers.append(answer)
        done.wait(max(0.0, 1.0 - (time.monotonic() - ticked)))


def with_reader(git_dir: str, work: Path, repeat: int) -> None:
    """Mine alone, beside a `racemine sql` process started each second, and beside a
    query asked each second from one long-lived process (what answering costs the mine
    without a new process's start-up), in turns."""
    readers: dict[str, Callable[[Path], str | None] | None] = {
        "alone": None, "racemine sql each second": _sql_process,
        "query each second, one process": _sql_in_process}
    times: dict[str, list[float]] = {name: [] for name in readers}
    cpu: dict[str, list[float]] = {name: [] for name in readers}
    answers: dict[str, list[str | None]] = {name: [] for name in readers}
    for i in range(repeat):
        for name, ask in readers.items():
            warehouse = work / f"{i}-{len(times[name])}-{name.split()[0]}.duckdb"
            done = threading.Event()
            reader = threading.Thread(target=_read_every_second,
                                      args=(ask, warehouse, done, answers[name]))
            if ask is not None:
                reader.start()
            try:
                times[name].append(_mine_cli(git_dir, warehouse, cpu[name]))
            finally:
                done.set()
                if ask is not None:
                    reader.join()
    alone = statistics.median(times["alone"])
    for name, values in times.items():
        median = statistics.median(values)
        print(f"mine, {name:<31} {median:6.2f} s  ({min(values):.2f} to {max(values):.2f})"
              + ("" if name == "alone" else f"  {median / alone - 1:+.1%}")
              + f"; the mine's own CPU {statistics.median(cpu[name]):.2f} s")
    if _READER_CPU:
        # On a machine the mine keeps busy, what the readers' own start-up costs comes out
        # of the mine's time whatever the reads cost the mine.
        print(f"  each `racemine sql` process: {statistics.median(_READER_CPU):.2f} CPU s "
              f"(median of {len(_READER_CPU)}), {os.cpu_count()} cores")
    for name, got in answers.items():
        if readers[name] is not None:
            print(f"  {name}: {len(got)} queries, {sum(a is None for a in got)} unanswered; "
                  f"commits seen: {', '.join(a or '-' for a in got)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("repo", help="path to a local work tree or bare git dir")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--reader", action="store_true",
                        help="only time the mine alone and beside a reader querying each second")
    args = parser.parse_args()
    git_dir = str(Path(args.repo).resolve())
    if args.reader:
        with tempfile.TemporaryDirectory() as tmp:
            with_reader(git_dir, Path(tmp), args.repeat)
        return

    started = time.perf_counter()
    from flows.jobs.mine import mine_and_label  # noqa: F401  (import cost, reported below)
    from miners.classify import load_pattern_set

    import_s = time.perf_counter() - started
    grep = load_pattern_set().prefilter.pattern
    commits = int(subprocess.run(["git", "-C", git_dir, "rev-list", "--count", "HEAD"],
                                 capture_output=True, text=True, check=True).stdout)

    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        floor_s, patch_bytes = _best(lambda: floor(git_dir, grep), args.repeat)
        core_s, (matches, pairs, labels) = _best(lambda: core(git_dir, work), args.repeat)
        cli_times = [_mine_cli(git_dir, work / f"cli-{i}.duckdb")
                     for i in range(min(args.repeat, 2))]
        cli_s = statistics.median(cli_times)

    print(f"repository        {git_dir}  ({commits:,} commits on HEAD)")
    print(f"git floor         {floor_s:8.2f} s  (grep + patches, {patch_bytes / 1e6:.1f} MB)")
    print(f"racemine core     {core_s:8.2f} s  ({matches:,} matches, {pairs:,} pairs, "
          f"{labels:,} labels, into DuckDB)")
    print(f"ratio core/floor  {core_s / floor_s:8.2f} x")
    print(f"racemine mine CLI {cli_s:8.2f} s  (start-up included: "
          f"{cli_s - core_s:.2f} s over core; imports alone {import_s:.2f} s)")


if __name__ == "__main__":
    main()
