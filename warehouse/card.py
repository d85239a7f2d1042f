"""The dataset card: README.md of an export folder, with the Hugging Face YAML header.

Everything in it is computed from the files just written (counts) and from the warehouse
(licenses, annotators, runs), never from the clock, so the same export gives the same card.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb

from warehouse.formats import DSPY_FIELDS, DSPY_INPUTS, quote


@dataclass(frozen=True)
class CardFacts:
    """What the card says beyond the counts it reads from the written files."""

    title: str
    level: str
    options: Mapping[str, Any]
    data_files: Mapping[str, str]  # split -> glob of its Parquet files, relative to the folder
    formats: Sequence[str]
    near_duplicates: Mapping[str, int]
    quality: Mapping[str, Any] | None = None  # `racemine eval` report, when asked for
    versions: Mapping[str, str] = field(default_factory=dict)
    empty_splits: Mapping[str, str] = field(default_factory=dict)  # split -> why it is empty


def _table(con: duckdb.DuckDBPyConnection, sql: str, headers: Sequence[str]) -> str:
    rows = con.execute(sql).fetchall()
    lines = ["| " + " | ".join(headers) + " |", "|" + " --- |" * len(headers)]
    lines += ["| " + " | ".join("" if v is None else str(v) for v in row) + " |" for row in rows]
    return "\n".join(lines) if rows else "(none)"


def _hf_license(licenses: list[str]) -> str:
    ids = sorted({part for lic in licenses for part in lic.split(" OR ")})
    return ids[0].lower() if len(ids) == 1 else "other"


def _rate(r: Mapping[str, Any]) -> str:
    if r["value"] is None:
        return "n/a (no cases)"
    return f"{r['value']:.3f} [{r['low']:.2f}, {r['high']:.2f}] ({r['hits']}/{r['total']})"


def render_card(con: duckdb.DuckDBPyConnection, files: Sequence[Path], facts: CardFacts) -> str:
    """The card's Markdown for the rows in files (Parquet, every split)."""
    src = f"read_parquet([{', '.join(quote(f) for f in files)}], hive_partitioning = false)"
    con.execute(f"CREATE OR REPLACE TEMP VIEW card_rows AS SELECT * FROM {src}")
    con.execute("""CREATE OR REPLACE TEMP VIEW card_sources AS
        SELECT r.repo, coalesce(k.license, 'unknown') AS license,
               coalesce(k.license_source, '') AS license_source, r.split, r.n
        FROM (SELECT repo, split, count(*) AS n FROM card_rows GROUP BY ALL) r
        LEFT JOIN repos k USING (repo)""")
    licenses = [r[0] for r in con.execute(
        "SELECT DISTINCT license FROM card_sources ORDER BY 1").fetchall()]
    header = {
        "pretty_name": facts.title,
        "license": _hf_license(licenses),
        "language": ["code"],
        "tags": ["code", "elixir", "erlang", "concurrency", "otp", "bug-fix"],
        "configs": [{"config_name": "default",
                     "data_files": [{"split": s, "path": p}
                                    for s, p in facts.data_files.items()]}],
    }
    split_order = "CASE split WHEN 'train' THEN 0 WHEN 'validation' THEN 1 ELSE 2 END"
    sections = [
        "---", *json.dumps(header, indent=2).splitlines(), "---", "",
        f"# {facts.title}", "",
        f"Before/after pairs of Elixir and Erlang code from commits that fix concurrency bugs, "
        f"one row per changed {facts.level}, each with a structured label (bug type, scope, "
        "location, the interleaving that triggers the bug, an explanation and the fix), "
        "mined from public git history by racemine.", "",
        "## Splits", "",
        _table(con, f"""SELECT split, count(*), count(DISTINCT repo),
                               count(DISTINCT repo || sha) FROM card_rows
                        GROUP BY split ORDER BY {split_order}""",
               ["split", "rows", "repositories", "commits"]), "",
        _split_rule(facts.options), "",
        *[f"- The {split} split is empty: {why}." for split, why in facts.empty_splits.items()],
        "",
        f"Near-duplicates (same change after dropping whitespace and comments): "
        f"{facts.near_duplicates.get('groups', 0)} groups of "
        f"{facts.near_duplicates.get('rows', 0)} rows, each group in one split; "
        f"{facts.near_duplicates.get('cross_repo', 0)} of them span repositories, which were "
        "then kept in one split together.", "",
        "## Rows per language and bug type", "",
        _table(con, f"""SELECT split, language, count(*) FROM card_rows GROUP BY split, language
                        ORDER BY {split_order}, language""", ["split", "language", "rows"]), "",
        _table(con, f"""SELECT split, coalesce(bug_type, '(none)'), count(*) FROM card_rows
                        GROUP BY split, 2 ORDER BY {split_order}, 2""",
               ["split", "bug type", "rows"]), "",
        "## Sources and licenses", "",
        "Only repositories whose license is in the export's allowlist are included"
        + (" (plus those whose license is unknown, as asked)"
           if facts.options.get("include_unknown_license") else "") + ". Licenses come from "
        "GitHub (`github`) or from the repository's own LICENSE file or package metadata "
        "(the file named). Keep the attribution these licenses ask for.", "",
        _table(con, f"""SELECT repo, license, license_source, split, n FROM card_sources
                        ORDER BY repo, {split_order}""",
               ["repository", "license", "license from", "split", "rows"]), "",
        "## Annotators", "",
        _table(con, """SELECT annotator, count(*) FROM card_rows GROUP BY ALL ORDER BY 1""",
               ["annotator id (kind/model, prompt or rules version, schema)", "rows"]), "",
        _quality(facts.quality), "",
        "## The interleaving as steps", "",
        "`event_sequence` is a list of steps, one per thing one process does: `step` (1, 2, "
        "…), `actor` (a process role such as `caller A of bump/1`, `Pool server` or `test "
        "process`), `action` (one of call, cast, send, receive, reply, spawn, link, monitor, "
        "exit, down, ets_read, ets_write, register, lookup, db_read, db_write, timer, timeout, "
        "other), `target` (the process, table or name acted on), and where it happens in the "
        "before version: `file`, `function` (name/arity) and `line`, with a short `note`. "
        "`event_sequence_text` renders them one line each for reading. In the JSONL, Parquet "
        "and Hugging Face files each step also says whether it passed the trace checks "
        "(`check_ok`, `check_failure`) and what a reviewer said (`reviewer_ok`, "
        "`reviewer_note`).", "",
        "The trace checks are decided by code: the location is a changed function with its "
        "real arity and lines inside its before-version span, and the scope agrees with the "
        "file; a concurrency fix has at least two steps (two actors for races, deadlocks and "
        "ordering bugs); each step names a changed file, a line of the before version inside "
        "the function it names, and its action is written within four lines of it (a send "
        "near a send step, an ETS call near an ETS step). `checks_passed` and "
        "`check_failures` give the outcome; `verified` is true when the checks passed and, "
        "where a reviewer looked, it found the label plausible. The offline (heuristic) "
        "annotator writes steps and an explanation only where a rule derived them from the "
        "diff, with the diff's names; elsewhere they are empty and `explanation_source` says "
        "why.", "",
        _table(con, """SELECT count(*) FILTER (WHERE is_concurrency_bug),
                              count(*) FILTER (WHERE is_concurrency_bug
                                               AND len(coalesce(event_sequence, [])) > 0),
                              count(*) FILTER (WHERE is_concurrency_bug AND verified)
                       FROM card_rows""",
               ["fix rows", "with steps", "verified"]), "",
        "## Where each bug came from (SZZ)", "",
        "`introduced_by` is the commit that most likely introduced the bug, `introduced_at` "
        "its author date, `bug_age_days` the days from it to the fix's author date, and "
        "`introduced_confidence` how sure that guess is (0 to 0.9). They come from `racemine "
        "szz`, an SZZ variant run through PyDriller: the lines a fix deleted or changed inside "
        "the functions it changed are blamed (`git blame -w -M`) in the fix's parent; blank "
        "lines, comments (`#`, `%`) and lines of bare syntax (`end`, `->`) are skipped; a "
        "commit whose change to a file kept every code token (a `mix format` or `erlfmt` "
        "run) is looked through with `--ignore-rev`; a fix that only adds lines blames the "
        "code next to each insertion in the enclosing function, as weaker evidence. The "
        "candidates are ranked by the lines that point at them (double inside the function "
        "the label located), then by recency; the warehouse's `szz_candidates` table keeps "
        "them all with the blamed lines.", "",
        _table(con, """SELECT count(*) FILTER (WHERE is_concurrency_bug),
                              count(*) FILTER (WHERE is_concurrency_bug
                                               AND introduced_by IS NOT NULL),
                              median(bug_age_days) FILTER (WHERE is_concurrency_bug)
                       FROM card_rows""",
               ["fix rows", "with introduced_by", "median bug age (days)"]), "",
        "## Files", "",
        "- `data/` — Parquet, the Hugging Face hub layout: "
        "`datasets.load_dataset(\"parquet\", data_dir=...)` or `load_dataset(<this folder>)`.",
        *_format_lines(facts.formats), "",
        "Every row carries its provenance: `repo`, `sha`, `path`, `mine_run_id` (the racemine "
        "run that stored the pair), `annotator` and `label_run_id`; `id` is a stable hash of "
        "the pair's key and `near_dup_key` the hash used to keep near-duplicates together.", "",
        "## How it was made", "",
        "racemine scanned each repository's commit messages with weighted patterns, kept the "
        "before/after text of every changed Elixir/Erlang file of the matching commits, cut "
        "them into functions with tree-sitter, marked cherry-picks and forks by `git patch-id "
        "--stable` (one canonical copy exported), and labeled each commit with the annotators "
        "above. Export options:", "",
        "```json", json.dumps(dict(facts.options), indent=2, sort_keys=True), "```", "",
        *(f"- {k}: {v}" for k, v in sorted(facts.versions.items())), "",
        "## Known limits", "",
        "- Commits are found by their messages: a fix described in other words is missing.",
        "- Heuristic labels (`heuristic/...`) come from rules over the message and the diff; "
        "their event sequences are templates, not analyses. Prefer LLM labels where present, "
        "and see the measured precision above.",
        "- Function boundaries come from tree-sitter; files it cannot parse have no "
        "function rows, and partially parsed files only the functions before the error.",
        "- Licenses read from files are matched by their distinctive sentences; a repository "
        "whose license text was not recognised is 'unknown'.",
        "- A split by repository balances rows, not bug types: with few repositories the "
        "splits' sizes and mixes can be far from the asked fractions.",
        "- `introduced_by` is a candidate, not a fact: SZZ's recall against developers' own "
        "answers is about 0.5-0.6 in the literature. Blame cannot see a bug made by code "
        "that was not changed (a missing call), moves between files, or history rewritten "
        "by squashes; an empty `introduced_by` means the fix was not traced or had no "
        "candidate (the warehouse's `szz_traces.reason` says why).",
    ]
    return "\n".join(sections) + "\n"


def _split_rule(options: Mapping[str, Any]) -> str:
    split = options.get("split", {})
    if split.get("by") == "time":
        return (f"Split by time (seed-free): validation from {split.get('validation_after')}, "
                f"test from {split.get('test_after')}; a pair whose near-duplicate appeared "
                "earlier goes where the earliest copy went.")
    if split.get("by") == "none":
        return "Not split: every row is in `train`."
    return (f"Split by repository (fractions {split.get('fractions')}, seed "
            f"{split.get('seed')}): no repository is in two splits.")


def _quality(quality: Mapping[str, Any] | None) -> str:
    if not quality:
        return ("## Measured quality\n\nNot measured for this export (pass `--eval GOLD.jsonl` "
                "to measure the labels against a file of hand-labeled commits).")
    return "\n".join([
        "## Measured quality", "",
        f"Against the {quality['gold']} hand-labeled commits of `{quality['gold_file']}` from "
        "repositories in this warehouse (a commit the miner did not keep counts as missed), "
        f"annotator `{quality.get('annotator') or 'newest label per commit'}`, "
        "with 95% Wilson intervals; these measure the whole warehouse's labels, not only "
        "the rows exported:", "",
        f"- precision of \"is a concurrency fix\": {_rate(quality['precision'])}",
        f"- recall: {_rate(quality['recall'])}",
        f"- bug-type accuracy (true positives): {_rate(quality['bug_type_accuracy'])}",
        f"- scope accuracy (true positives): {_rate(quality['scope_accuracy'])}",
    ])


def _format_lines(formats: Sequence[str]) -> list[str]:
    lines = []
    if "jsonl" in formats:
        lines.append("- `jsonl/{split}.jsonl` — the same rows as JSON lines.")
    if "hf" in formats:
        lines.append("- `hf/` — `datasets.load_from_disk(\"<this folder>/hf\")` gives a "
                     "DatasetDict.")
    if "dspy" in formats:
        lines.append(f"- `dspy/{{split}}.jsonl` — fields {', '.join(DSPY_FIELDS)} plus "
                     "provenance; `dspy.Example(**row).with_inputs("
                     f"{', '.join(repr(f) for f in DSPY_INPUTS)})`. Pairs without before "
                     "code (added files) are left out, and at function level every function "
                     "but the one the label locates.")
    return lines
