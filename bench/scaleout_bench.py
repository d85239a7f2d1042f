"""Mining many local repositories: the direct thread pool against a local Dask cluster.

    uv run prefect server start        # --dask runs as a tracked flow: it needs a server
    PREFECT_API_URL=http://127.0.0.1:4200/api uv run python bench/scaleout_bench.py REPO_PATH…

Runs `racemine mine` over all the repositories twice in one go — directly on threads, then
`--dask` as a tracked flow run — each into a fresh warehouse, and reports wall time, peak
memory of the whole process tree (Dask workers included), and whether the two warehouses
hold identical rows.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import duckdb
import psutil

TABLES = ("repos", "commits", "file_changes", "function_changes", "annotations")
_VOLATILE = {"run_id", "created_at", "last_mined_at"}


def _tree_rss(proc: psutil.Process) -> int:
    total = 0
    for p in [proc, *proc.children(recursive=True)]:
        with contextlib.suppress(psutil.Error):  # a process may end while we look
            total += p.memory_info().rss
    return total


def run(paths: list[str], warehouse: Path, extra: list[str], env: dict[str, str]
        ) -> tuple[float, int]:
    started = time.perf_counter()
    child = subprocess.Popen([sys.executable, "-m", "flows", "mine", *paths, "--warehouse",
                              str(warehouse), *extra], env=env, stdout=subprocess.DEVNULL,
                             stderr=subprocess.PIPE, text=True)
    peak = 0
    watched = psutil.Process(child.pid)

    def watch() -> None:
        nonlocal peak
        while child.poll() is None:
            peak = max(peak, _tree_rss(watched))
            time.sleep(0.2)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    _, err = child.communicate()
    watcher.join()
    if child.returncode != 0:
        raise SystemExit(f"racemine mine {' '.join(extra)} failed: {err[-2000:]}")
    return time.perf_counter() - started, peak


def rows(warehouse: Path, table: str) -> list[tuple]:
    con = duckdb.connect(str(warehouse), read_only=True)
    try:
        cols = [c[0] for c in con.execute(f"DESCRIBE {table}").fetchall()
                if c[0] not in _VOLATILE]
        return con.execute(f"SELECT {', '.join(cols)} FROM {table} ORDER BY ALL").fetchall()
    finally:
        con.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("repos", nargs="+")
    args = parser.parse_args()
    paths = [str(Path(p).resolve()) for p in args.repos]
    with tempfile.TemporaryDirectory() as tmp:
        env = {k: v for k, v in os.environ.items() if not k.startswith("RACEMINE_")}
        env.update({"RACEMINE_CACHE_DIR": str(Path(tmp) / "cache"),
                    "RACEMINE_CONCURRENCY": str(os.cpu_count() or 2)})
        results = {}
        direct = {k: v for k, v in env.items() if k != "PREFECT_API_URL"}
        for mode, extra, mode_env in (("threads", [], direct), ("dask", ["--dask"], env)):
            warehouse = Path(tmp) / f"{mode}.duckdb"
            results[mode] = (*run(paths, warehouse, extra, mode_env), warehouse)
        identical = all(rows(results["threads"][2], t) == rows(results["dask"][2], t)
                        for t in TABLES)
        commits = rows(results["threads"][2], "commits")
    print(f"{len(paths)} repositories, {len(commits):,} matching commits, "
          f"concurrency {env['RACEMINE_CONCURRENCY']}")
    for mode, (seconds, peak, _) in results.items():
        print(f"{mode:8s} wall {seconds:7.1f} s   peak memory {peak / 2**20:7.0f} MB")
    print(f"warehouses identical: {identical}")


if __name__ == "__main__":
    main()
