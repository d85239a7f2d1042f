"""Whole commands as a user waits for them, against plain git on the same repository.

    uv run python bench/startup_bench.py REPO [REPO …] [--rounds 5]

For each repository (a local clone or bare git dir), each round times, as separate
processes and in this order: the git floor (`git log -P --grep` with the classifier's
patterns plus the full patches of the commits it matches), `racemine --help`,
`racemine sql "select 1"`, a first `racemine mine` into a fresh warehouse, and a second
`racemine mine` of the same repository when nothing is new. Medians and ranges are printed,
with the first mine's ratio to the floor of the same round.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

RACEMINE = str(Path(sys.executable).with_name("racemine"))


def _timed(args: Sequence[str], cwd: Path) -> float:
    started = time.perf_counter()
    subprocess.run(list(args), cwd=cwd, check=True, stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL)
    return time.perf_counter() - started


def _floor_args(git_dir: str) -> list[str]:
    from miners.classify import load_pattern_set

    grep = load_pattern_set().prefilter.pattern
    return ["git", "-C", git_dir, "log", "-P", f"--grep={grep}", "-p", "--format=%H%n%B",
            "HEAD"]


def _round(git_dir: str, work: Path, n: int) -> dict[str, float]:
    warehouse = str(work / f"round-{n}.duckdb")
    times = {"git floor": _timed(_floor_args(git_dir), work),
             "--help": _timed([RACEMINE, "--help"], work)}
    times["first mine"] = _timed([RACEMINE, "mine", git_dir, "-w", warehouse], work)
    times["re-mine"] = _timed([RACEMINE, "mine", git_dir, "-w", warehouse], work)
    times["sql"] = _timed([RACEMINE, "sql", "select 1", "-w", warehouse], work)
    times["first mine / floor"] = times["first mine"] / times["git floor"]
    return times


def _line(name: str, values: list[float], unit: str) -> str:
    return (f"  {name:<20} {statistics.median(values):7.2f} {unit}   "
            f"({min(values):.2f} to {max(values):.2f})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("repos", nargs="+", help="local clones or bare git dirs")
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    for repo in args.repos:
        git_dir = str(Path(repo).resolve())
        commits = subprocess.run(["git", "-C", git_dir, "rev-list", "--count", "HEAD"],
                                 capture_output=True, text=True, check=True).stdout.strip()
        with tempfile.TemporaryDirectory() as tmp:
            rounds = [_round(git_dir, Path(tmp), n) for n in range(args.rounds)]
        print(f"{git_dir} ({int(commits):,} commits), median of {args.rounds} rounds "
              "(range):")
        for name in rounds[0]:
            unit = "x" if "/" in name else "s"
            print(_line(name, [r[name] for r in rounds], unit))


if __name__ == "__main__":
    main()
