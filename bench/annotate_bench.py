"""Throughput of LLM annotation against the project's chat-completions test server.

    uv run python bench/annotate_bench.py [--pairs 500] [--latency 0.2] [--concurrency 32]
                                          [--prompts-from WAREHOUSE]

Builds a warehouse of synthetic commits (one file pair each), serves replies after a fixed
latency on 127.0.0.1, labels them all, and reports throughput as a fraction of the ideal
(pairs x latency / concurrency), requests and input tokens per labeled commit, peak memory,
and that a second run sends no request. For reference, the same number of bare
`chat.completions.create` calls at the same concurrency is timed against the same server:
what the openai client alone reaches on this machine. The prompt's layout is measured on
the synthetic commits and, with --prompts-from, on the stored commits of a real warehouse:
the prefix every request shares (what OpenAI's prompt caching and vLLM's prefix cache can
reuse) as a share of a mean request.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from openai import AsyncOpenAI

from annotators.limits import Price
from annotators.llm import LLMConfig
from annotators.prompting import build_label_messages, estimate_tokens, load_template, new_fence
from flows.jobs.annotate import annotate_with_llm
from warehouse.db import connect, open_warehouse
from warehouse.queries import read_commit_inputs, repo_names
from warehouse.save import upsert_rows


def prompt_layout(warehouse: Path, config: LLMConfig) -> tuple[int, float, float, float]:
    """(commits, shared prefix in characters, its share of a mean request, mean request in
    characters) over the stored commits' first requests, built as a run builds them."""
    template = load_template(config.template)
    requests = []
    with open_warehouse(warehouse, read_only=True) as con:
        for repo in repo_names(con):
            shas = [r[0] for r in con.execute(
                "SELECT sha FROM commits WHERE repo = ? AND NOT is_merge", [repo]).fetchall()]
            for commit in read_commit_inputs(con, repo, shas):
                messages, _ = build_label_messages(commit, template, new_fence(),
                                                   config.max_input_chars)
                requests.append("".join(m["content"] for m in messages))
    if not requests:
        return 0, 0.0, 0.0, 0.0
    shared = os.path.commonprefix(requests)  # noqa: RUF071  (characters, not path parts)
    mean = sum(len(r) for r in requests) / len(requests)
    return len(requests), len(shared), len(shared) / mean, mean


def cpu_ticks() -> tuple[int, int] | None:
    """(ticks stolen by the hypervisor, all ticks) of the machine so far, where Linux says."""
    try:
        fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    except (OSError, ValueError):
        return None
    return (fields[7] if len(fields) > 7 else 0), sum(fields[:8])


def build_warehouse(path: Path, pairs: int) -> None:
    con = connect(path)
    body = "".join(f"  def f{i}(x), do: x + {i}\n" for i in range(40))
    commits, files = [], []
    for i in range(pairs):
        sha = f"{i:040x}"
        commits.append({"repo": "bench/repo", "sha": sha, "parents": ["0" * 40],
                        "is_merge": False, "subject": f"Fix race {i}",
                        "message": f"Fix race {i}", "matched_terms": ["race"],
                        "match_score": 1.0, "run_id": "bench"})
        before = f"defmodule M{i} do\n{body}end\n"
        after = before.replace("x + 1\n", "x + 2\n", 1)
        diff = (f"diff --git a/lib/m{i}.ex b/lib/m{i}.ex\n--- a/lib/m{i}.ex\n+++ b/lib/m{i}.ex\n"
                f"@@ -3 +3 @@\n-  def f1(x), do: x + 1\n+  def f1(x), do: x + 2\n")
        files.append({"repo": "bench/repo", "sha": sha, "path": f"lib/m{i}.ex",
                      "change_type": "modified", "language": "elixir", "is_test": False,
                      "before": before, "after": after, "diff": diff, "lines_added": 1,
                      "lines_removed": 1, "run_id": "bench"})
    upsert_rows(con, "commits", commits)
    upsert_rows(con, "file_changes", files)
    con.execute("INSERT INTO repos (repo) VALUES ('bench/repo')")
    con.close()


async def bare_client(base_url: str, requests: int, concurrency: int) -> float:
    """Seconds for `requests` bare completions through the openai client, nothing else."""
    client = AsyncOpenAI(base_url=base_url, api_key="bench", max_retries=0)
    # The stand-in answers requests shaped like racemine's: a fence token, a changed file.
    messages = [{"role": "system", "content": "You label commits."},
                {"role": "user", "content": "Data token: 0a1b2c\nChanged files: lib/m.ex\n"
                                            + "x" * 3000}]
    left = [requests]

    async def worker() -> None:
        while left[0] > 0:
            left[0] -= 1
            await client.chat.completions.create(model="bench", messages=messages)

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    elapsed = time.perf_counter() - started
    await client.close()
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pairs", type=int, default=500)
    parser.add_argument("--latency", type=float, default=0.2)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--prompts-from", type=Path,
                        help="a real warehouse whose stored commits to measure prompts on")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        warehouse = Path(tmp) / "bench.duckdb"
        build_warehouse(warehouse, args.pairs)
        rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss

        # The server runs in its own process, so it does not compete with the client for
        # this interpreter's GIL.
        server = subprocess.Popen([sys.executable, "-m", "tests.llm_server", "--latency",
                                   str(args.latency)], stdout=subprocess.PIPE, text=True,
                                  cwd=Path(__file__).resolve().parents[1])
        try:
            assert server.stdout is not None
            base_url = server.stdout.readline().strip()
            config = LLMConfig(model="bench", base_url=base_url, api_key="bench",
                               price=Price(0, 0), concurrency=args.concurrency)
            # The openai client imports its HTTP transport when the first client is made:
            # process start-up, reported apart from the run like the mine bench's imports.
            started = time.perf_counter()
            AsyncOpenAI(base_url=base_url, api_key="bench")
            transport_import = time.perf_counter() - started
            ticks = cpu_ticks()
            started = time.perf_counter()
            first = annotate_with_llm(warehouse, config, "bench-1")
            elapsed = time.perf_counter() - started
            after = cpu_ticks()
            sent = first.summary.requests
            second = annotate_with_llm(warehouse, config, "bench-2")
            resent = second.summary.requests
            bare = asyncio.run(bare_client(base_url, args.pairs, args.concurrency))
        finally:
            server.terminate()
            server.wait()
        rss_after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        # Measured after the memory reading: it holds every request in memory at once.
        layouts = {"synthetic": prompt_layout(warehouse, config)}
        if args.prompts_from:
            layouts[str(args.prompts_from)] = prompt_layout(args.prompts_from, config)
    request_chars = layouts["synthetic"][3]
    ideal = args.pairs * args.latency / args.concurrency
    print(f"pairs {args.pairs}, latency {args.latency * 1000:.0f} ms, "
          f"concurrency {args.concurrency}")
    labeled = max(first.summary.labeled, 1)
    print(f"labeled {first.summary.labeled}, failed {first.summary.failed}, requests {sent} "
          f"({sent / labeled:.2f} per labeled commit, about "
          f"{estimate_tokens(int(request_chars)):,} input tokens each by {3.5} chars a token)")
    print(f"wall {elapsed:.2f} s, ideal {ideal:.2f} s, throughput {ideal / elapsed:.2f} of ideal "
          f"({args.pairs / elapsed:.1f} pairs/s)")
    print(f"bare openai client, same requests: {bare:.2f} s, {ideal / bare:.2f} of ideal")
    if ticks and after and after[1] > ticks[1]:
        # On a virtual machine the hypervisor may run others on these cores: the client's
        # CPU per request then takes longer, and so does the run.
        print(f"CPU time stolen by the hypervisor during the run: "
              f"{(after[0] - ticks[0]) / (after[1] - ticks[1]):.0%}")
    print(f"openai transport import before the run: {transport_import:.2f} s")
    print(f"peak RSS {rss_before / 1024:.0f} MB before, {rss_after / 1024:.0f} MB after")
    print(f"second run: {second.commits} commits to label, {resent} requests")
    for name, (commits, shared, share, mean) in layouts.items():
        print(f"prompts of {name} ({commits:,} commits): a mean request of {mean:,.0f} chars "
              f"(about {estimate_tokens(int(mean)):,} tokens), of which every request shares "
              f"the first {shared:,.0f} ({share:.0%})")


if __name__ == "__main__":
    main()
