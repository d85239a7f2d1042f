"""Time racemine's mining of a local repository against the git floor, in one run.

    uv run python bench/mine_bench.py PATH_TO_REPO [--repeat 3]

The floor is what plain git needs for the same answer: `git log -P --grep` with the
classifier's patterns plus the full patches of the commits it matches, in one process.
racemine's core (scan, classify, extract, store, label into a fresh DuckDB file) is timed
in this process after imports; the full `racemine mine` command (interpreter, imports and
start-up included) is timed as a subprocess and reported beside it.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("repo", help="path to a local work tree or bare git dir")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    git_dir = str(Path(args.repo).resolve())

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
        cli_times = []
        for i in range(min(args.repeat, 2)):
            started = time.perf_counter()
            subprocess.run([sys.executable, "-m", "flows.cli", "mine", git_dir, "--warehouse",
                            str(work / f"cli-{i}.duckdb")], check=True, capture_output=True)
            cli_times.append(time.perf_counter() - started)
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
