"""Export a warehouse of synthetic pairs; time and peak memory against the floor, per size.

    uv run python bench/export_bench.py [--pairs 100000] [--sizes 4] [--formats jsonl,hf,dspy]

Builds a warehouse of N labeled file pairs (realistic sizes: a 3-4 KB file before and after,
a unified diff, a few functions each) over N/200 repositories, then in separate processes:

- the floor: DuckDB copying the same pairs' columns to one Parquet file, nothing else;
- racemine's export of the same warehouse (selection, near-duplicate keys, split by
  repository, Parquet + the asked formats + card), file level.

Each process reports its own wall time and peak RSS. Sizes N/k … N (k = --sizes) show
whether memory grows with the warehouse (it should not: everything streams or spills).
With --big-every M, every M-th pair is a real-sized large file, about 900 KB before and
after (just under the 1 MB extraction cap): memory must stay flat with those too.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

SYNTHETIC = r"""
INSERT INTO repos (repo, url, license, license_source)
SELECT 'github.com/bench/r' || i, NULL, CASE WHEN i % 7 = 0 THEN 'GPL-3.0' ELSE 'MIT' END,
       'LICENSE' FROM range($repos) t(i);
INSERT INTO commits
SELECT 'github.com/bench/r' || (i % $repos), sha256('c' || i), [sha256('p' || i)], false,
       'Ada', TIMESTAMPTZ '2020-01-01' + to_days(CAST(i % 1500 AS INTEGER)),
       TIMESTAMPTZ '2020-01-01' + to_days(CAST(i % 1500 AS INTEGER)),
       'Fix race condition in worker ' || i, 'Fix race condition in worker ' || i || chr(10)
       || repeat('Two callers could both miss the entry. ', 5), ['race condition'], 2.0,
       CASE WHEN i % 50 = 0 THEN 'dup' || (i // 100) END, 1, 'bench-mine'
FROM range($pairs) t(i);
INSERT INTO file_changes
SELECT 'github.com/bench/r' || (i % $repos), sha256('c' || i), 'lib/worker_' || i || '.ex',
       NULL, 'modified', CASE WHEN i % 3 = 0 THEN 'erlang' ELSE 'elixir' END, i % 4 = 0,
       'defmodule Worker' || i || ' do' || chr(10)
         || repeat('  def f(x), do: x' || chr(10), CASE WHEN $big > 0 AND i % $big = 0
                                                       THEN 50000 ELSE 150 END)
         || '  def bump(k), do: :ets.lookup(:t, k) # ' || i || chr(10) || 'end' || chr(10),
       'defmodule Worker' || i || ' do' || chr(10)
         || repeat('  def f(x), do: x' || chr(10), CASE WHEN $big > 0 AND i % $big = 0
                                                       THEN 50000 ELSE 150 END)
         || '  def bump(k), do: :ets.update_counter(:t, k, 1) # ' || i || chr(10) || 'end'
         || chr(10),
       '@@ -152 +152 @@' || chr(10) || '-  def bump(k), do: :ets.lookup(:t, k, ' || (i % 5000)
         || ')' || chr(10) || '+  def bump(k), do: :ets.update_counter(:t, k, 1)' || chr(10)
         || repeat(' context line' || chr(10), 30),
       1, 1, NULL, 'bench-mine', 'parsed'
FROM range($pairs) t(i);
INSERT INTO annotations (repo, sha, target, annotator, status, is_concurrency_bug, bug_type,
                         scope, location_file, location_function, location_start,
                         location_end, event_sequence, explanation, fix_summary, confidence,
                         run_id, created_at)
SELECT 'github.com/bench/r' || (i % $repos), sha256('c' || i), '', 'heuristic/bench/schema-1',
       'ok', true, 'race_condition', 'production', 'lib/worker_' || i || '.ex', 'bump/1',
       152, 152, ['A looks up k', 'B looks up k', 'both insert'], 'Lookup then insert.',
       'update_counter', 0.8, 'bench-label', TIMESTAMPTZ '2024-01-01'
FROM range($pairs) t(i);
"""

RUNNER = textwrap.dedent("""
    import json, sys, time
    from pathlib import Path
    kind, warehouse, out, formats = sys.argv[1], sys.argv[2], Path(sys.argv[3]), sys.argv[4]
    started = time.perf_counter()
    if kind == "floor":
        import duckdb
        con = duckdb.connect(warehouse, read_only=True)
        rows = con.execute(f"COPY (SELECT * FROM file_changes JOIN annotations USING (repo, sha))"
                           f" TO '{out}.parquet' (FORMAT parquet, COMPRESSION zstd)").fetchone()[0]
    else:
        from flows.jobs.export import run_export
        from warehouse.dataset import Selection
        from warehouse.formats import ExportFormat
        from warehouse.splits import SplitPlan
        chosen = [ExportFormat(f) for f in formats.split(",") if f]
        rows = run_export(Path(warehouse), out, Selection(), SplitPlan(), chosen).total
    seconds = time.perf_counter() - started
    # VmHWM, not ru_maxrss: the latter can carry the forking parent's peak across exec
    status = Path("/proc/self/status").read_text()
    peak = int(next(l for l in status.splitlines() if l.startswith("VmHWM")).split()[1]) / 1024
    print(json.dumps({"rows": rows, "seconds": seconds, "peak_mb": peak}))
""")


def build(path: Path, pairs: int, big: int = 0) -> None:
    from warehouse.db import connect

    con = connect(path)
    try:
        params = {"pairs": pairs, "repos": max(1, pairs // 200), "big": big}
        for statement in SYNTHETIC.split(";\n"):
            if statement.strip():
                con.execute(statement, {k: v for k, v in params.items()
                                        if f"${k}" in statement})
        con.execute("CHECKPOINT")  # as a warehouse is after a mining run closes it
    finally:
        con.close()


def measure(kind: str, warehouse: Path, out: Path, formats: str) -> dict:
    proc = subprocess.run([sys.executable, "-c", RUNNER, kind, str(warehouse), str(out),
                           formats], capture_output=True, text=True)
    if proc.returncode != 0:
        sys.exit(f"{kind} failed on {warehouse.name}:\n{proc.stderr[-2000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    if sys.argv[1:2] == ["--build"]:
        build(Path(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]))
        return
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pairs", type=int, default=100_000)
    parser.add_argument("--sizes", type=int, default=2, help="also run N/2 … (this many sizes)")
    parser.add_argument("--formats", default="jsonl,hf,dspy")
    parser.add_argument("--big-every", type=int, default=0,
                        help="make every M-th pair a ~900 KB file (0: none)")
    args = parser.parse_args()
    sizes = sorted({max(1, args.pairs * k // args.sizes) for k in range(1, args.sizes + 1)})
    print(f"{'pairs':>8} {'floor s':>8} {'floor MB':>9} {'export s':>9} {'export MB':>10} "
          f"{'ratio':>6} {'rows':>8} {'out MB':>7}")
    with tempfile.TemporaryDirectory(prefix="racemine-export-bench-") as tmp:
        for n in sizes:
            warehouse = Path(tmp) / f"w{n}.duckdb"
            # built in a child, so this process stays small while it times its children
            subprocess.run([sys.executable, __file__, "--build", str(warehouse), str(n),
                            str(args.big_every)], check=True)
            floor = measure("floor", warehouse, Path(tmp) / f"floor{n}", "")
            export = measure("export", warehouse, Path(tmp) / f"out{n}", args.formats)
            size = sum(p.stat().st_size for p in (Path(tmp) / f"out{n}").rglob("*")
                       if p.is_file()) / 2**20
            print(f"{n:>8} {floor['seconds']:>8.1f} {floor['peak_mb']:>9.0f} "
                  f"{export['seconds']:>9.1f} {export['peak_mb']:>10.0f} "
                  f"{export['seconds'] / floor['seconds']:>6.1f} {export['rows']:>8} "
                  f"{size:>7.0f}", flush=True)


if __name__ == "__main__":
    main()
