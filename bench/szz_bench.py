"""`racemine szz` as a user waits for it, against plain `git blame` of the same line ranges.

    uv run python bench/szz_bench.py REPO [REPO …] [--rounds 3]

For each repository (a local clone or bare git dir) the script mines it into a fresh
warehouse (not timed), then each round times, in this order: the floor — `git blame -w -M`
of exactly the line ranges racemine chooses, one git process per fix and file, as many at
once as racemine runs (the machine's cores) — and the whole `racemine szz --redo` process
(start-up, reading the warehouse, blame, looking through reformatting commits, ranking,
saving). Medians and ranges are printed, with the ratio of the two in each round.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

RACEMINE = str(Path(sys.executable).with_name("racemine"))


def _blame_commands(warehouse: Path, git_dir: str) -> list[list[str]]:
    """One `git blame` per (fix, file) target, with racemine's own line ranges."""
    from miners.szz import plan_blame
    from warehouse.db import open_warehouse
    from warehouse.queries import read_szz_inputs, szz_todo

    commands = []
    with open_warehouse(warehouse, read_only=True) as con:
        for repo, located in szz_todo(con, redo=True).items():
            for fix in read_szz_inputs(con, repo, located):
                for target in plan_blame(fix).targets:
                    commands.append(["git", "-C", git_dir, "blame", "-w", "-M",
                                     *(f"-L{a},{b}" for a, b in target.ranges()),
                                     str(fix.parent), "--", target.path])
    return commands


def _floor(commands: list[list[str]]) -> float:
    def run(args: list[str]) -> None:
        subprocess.run(args, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    started = time.perf_counter()
    with ThreadPoolExecutor(os.cpu_count() or 1) as pool:
        list(pool.map(run, commands))
    return time.perf_counter() - started


def _timed(args: list[str], env: dict[str, str]) -> float:
    started = time.perf_counter()
    subprocess.run(args, check=True, env=env, stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL)
    return time.perf_counter() - started


def _line(name: str, values: list[float], unit: str) -> str:
    return (f"  {name:<22} {statistics.median(values):7.2f} {unit}   "
            f"({min(values):.2f} to {max(values):.2f})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("repos", nargs="+", help="local clones or bare git dirs")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    for repo in args.repos:
        git_dir = str(Path(repo).resolve())
        with tempfile.TemporaryDirectory() as tmp:
            env = {**os.environ, "RACEMINE_CACHE_DIR": str(Path(tmp) / "cache")}
            warehouse = Path(tmp) / "w.duckdb"
            subprocess.run([RACEMINE, "mine", git_dir, "-w", str(warehouse)], check=True,
                           env=env, stdout=subprocess.DEVNULL)
            commands = _blame_commands(warehouse, git_dir)
            rounds = []
            for _ in range(args.rounds):
                floor = _floor(commands)
                szz = _timed([RACEMINE, "szz", "--redo", "-w", str(warehouse)], env)
                rounds.append({"git blame floor": floor, "racemine szz": szz,
                               "szz / floor": szz / floor})
        print(f"{git_dir}: {len(commands):,} blames of the fixes' line ranges, median of "
              f"{args.rounds} rounds (range):")
        for name in rounds[0]:
            print(_line(name, [r[name] for r in rounds], "x" if "/" in name else "s"))


if __name__ == "__main__":
    main()
