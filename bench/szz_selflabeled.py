"""SZZ measured against what developers wrote: fixes whose message names the commit that
introduced the bug.

    uv run python bench/szz_selflabeled.py GITDIR=owner/name [GITDIR=owner/name …] \
        [--save SET.jsonl]

For each repository (a local clone or bare git dir) the script reads the first-parent and
side history of HEAD for non-merge commits whose message names where their bug came from —
"introduced in 1a2b3c4", "broken by <sha>", "regression from #123", "Fixes: <sha>",
"introduced in the previous commit" — and resolves the name: a sha to a commit that is an
ancestor of the fix, a pull request to the commits it merged (the merge commit's second
parent side, or the squashed commit whose subject ends in "(#123)"), "the previous/parent
commit" to the fix's parent. Fixes that change no Elixir/Erlang file are left out.

It then runs racemine as a user would — `racemine mine` with a pattern file that matches
those messages, `racemine szz --all` — and reports how often the top candidate, and any
candidate, is one of the named commits, with 95% Wilson intervals, per repository and in
all. PyDriller's own SZZ (`Git.get_commits_last_modified_lines`, every line the fix
deleted, whole files, no ranking) runs on the same fixes for comparison.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path

RACEMINE = str(Path(sys.executable).with_name("racemine"))
_VERB = r"(?:introduced|caused|broken|broke|regressed|regression|bug|issue)"
_PREP = r"(?:in|by|from|with|since|at)"
SHA_REF = re.compile(rf"\b{_VERB}\s+{_PREP}\s+(?:commit\s+|sha\s+)?`?(?P<sha>[0-9a-f]{{7,40}})\b"
                     r"|^Fixes:\s+(?P<fixes>[0-9a-f]{7,40})\b", re.I | re.M)
PR_REF = re.compile(rf"\b{_VERB}\s+{_PREP}\s+(?:PR\s+|pull request\s+)?"
                    r"(?:#|https://github\.com/[\w.-]+/[\w.-]+/pull/)(?P<pr>\d{1,6})\b", re.I)
# "a previous commit" does not say which one.
PARENT_REF = re.compile(rf"\b{_VERB}\s+{_PREP}\s+(?:the\s+)?(?:previous|parent|last)\s+"
                        r"commit\b", re.I)
# What `racemine mine --patterns` keeps: any message with one of the phrases above (RE2).
PATTERNS = f"""min_score = 1.0
[[pattern]]
name = "names_origin"
regex = '(?im){_VERB}\\s+{_PREP}\\s+|^Fixes:\\s+[0-9a-f]{{7,40}}'
weight = 1.0
"""
BEAM = re.compile(r"\.(?:ex|exs|erl|hrl|escript)$|\.app\.src$")


@dataclass
class SelfLabeled:
    repo: str
    sha: str
    named: list[str]  # the commits the message names as the origin
    how: str  # sha | pr | parent
    quote: str


def _git(git_dir: str, *args: str, stdin: str | None = None) -> str:
    return subprocess.run(["git", "-C", git_dir, *args], input=stdin, capture_output=True,
                          text=True, errors="replace", check=True).stdout


def _pull_requests(git_dir: str) -> dict[str, list[str]]:
    """PR number → the commits it brought: a merge's second-parent side, or a squash."""
    prs: dict[str, list[str]] = {}
    for line in _git(git_dir, "log", "HEAD", "--format=%H %P%x1f%s").splitlines():
        head, _, subject = line.partition("\x1f")
        sha, *parents = head.split()
        merged = re.match(r"Merge pull request #(\d+)", subject)
        if merged and len(parents) == 2:
            side = _git(git_dir, "rev-list", f"{parents[0]}..{parents[1]}").split()
            prs[merged[1]] = [*side, sha]
        elif squashed := re.search(r"\(#(\d+)\)\s*$", subject):
            prs.setdefault(squashed[1], [sha])
    return prs


def find_self_labeled(git_dir: str, repo: str) -> list[SelfLabeled]:
    records = _git(git_dir, "log", "HEAD", "--no-merges",
                   "--format=%x1e%H%x1f%P%x1f%B").split("\x1e")[1:]
    prs: dict[str, list[str]] | None = None
    found = []
    for record in records:
        sha, parents, message = record.split("\x1f", 2)
        named, how, quote = [], "", ""
        for m in SHA_REF.finditer(message):
            ref = m["sha"] or m["fixes"]
            full = _resolve(git_dir, ref, sha)
            if full:
                named.append(full)
                how, quote = "sha", m.group(0)
        if not named and (m := PR_REF.search(message)):
            prs = _pull_requests(git_dir) if prs is None else prs
            ancestors = [c for c in prs.get(m["pr"], []) if _is_ancestor(git_dir, c, sha)]
            if ancestors:
                named, how, quote = ancestors, "pr", m.group(0)
        if not named and (m := PARENT_REF.search(message)) and parents.split():
            named, how, quote = [parents.split()[0]], "parent", m.group(0)
        if named and _changes_beam(git_dir, sha):
            found.append(SelfLabeled(repo, sha, named, how, quote.strip()))
    return found


def _resolve(git_dir: str, ref: str, fix: str) -> str | None:
    out = subprocess.run(["git", "-C", git_dir, "rev-parse", "--verify", "--quiet",
                          f"{ref}^{{commit}}"], capture_output=True, text=True)
    full = out.stdout.strip()
    if out.returncode != 0 or full == fix or not _is_ancestor(git_dir, full, fix):
        return None
    return full


def _is_ancestor(git_dir: str, commit: str, of: str) -> bool:
    return subprocess.run(["git", "-C", git_dir, "merge-base", "--is-ancestor", commit, of],
                          capture_output=True).returncode == 0 and commit != of


def _changes_beam(git_dir: str, sha: str) -> bool:
    files = _git(git_dir, "diff-tree", "--no-commit-id", "-r", "--name-only", sha).split()
    return any(BEAM.search(f) for f in files)


def wilson(hits: int, total: int) -> str:
    from annotators.evaluation import wilson as rate

    r = rate(hits, total)
    return f"{hits}/{total} = {r.value:.2f} [{r.low:.2f}, {r.high:.2f}]" if total else "n/a"


def pydriller_hits(clone: str, fixes: list[SelfLabeled]) -> tuple[int, float]:
    """Any-candidate hits of PyDriller's plain SZZ, and its mean number of candidates."""
    from pydriller import Git

    git = Git(clone)
    hits, sizes = 0, []
    for fix in fixes:
        try:
            found = set().union(*git.get_commits_last_modified_lines(
                git.get_commit(fix.sha)).values())
        except Exception:  # PyDriller raises on what it cannot read (submodules, binaries)
            found = set()
        hits += bool(found & set(fix.named))
        sizes.append(len(found))
    return hits, sum(sizes) / max(1, len(sizes))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("repos", nargs="+", help="GITDIR=owner/name")
    parser.add_argument("--save", type=Path, help="write the self-labeled set here (JSONL)")
    args = parser.parse_args()
    totals: Counter[str] = Counter()
    reasons: Counter[str] = Counter()
    everything: list[SelfLabeled] = []
    with tempfile.TemporaryDirectory() as tmp:
        env = {**os.environ, "RACEMINE_CACHE_DIR": str(Path(tmp) / "cache")}
        patterns = Path(tmp) / "origins.toml"
        patterns.write_text(PATTERNS)
        warehouse = str(Path(tmp) / "w.duckdb")
        print(f"{'repository':<34} {'fixes':>5} {'top hit':>24} {'any hit':>24} "
              f"{'pydriller any':>14}")
        for spec in args.repos:
            git_dir, _, name = spec.rpartition("=")
            fixes = find_self_labeled(git_dir, f"github.com/{name}")
            everything += fixes
            if not fixes:
                print(f"{name:<34} {0:>5}")
                continue
            subprocess.run([RACEMINE, "mine", spec, "--patterns", str(patterns), "-w",
                            warehouse], check=True, env=env, stdout=subprocess.DEVNULL)
            subprocess.run([RACEMINE, "szz", "--all", "--repo", f"github.com/{name}", "-w",
                            warehouse], check=True, env=env, stdout=subprocess.DEVNULL)
            top, anyhit, traced = _score(warehouse, fixes, reasons)
            clone = next(iter((Path(tmp) / "cache" / "szz").glob(
                f"github.com_{name.replace('/', '_')}-*.git")))
            py_hits, py_size = pydriller_hits(str(clone), fixes)
            totals.update({"fixes": len(fixes), "top": top, "any": anyhit, "traced": traced,
                           "py": py_hits})
            print(f"{name:<34} {len(fixes):>5} {wilson(top, len(fixes)):>24} "
                  f"{wilson(anyhit, len(fixes)):>24} {py_hits:>6} ({py_size:.1f})")
    n = totals["fixes"]
    print(f"{'all':<34} {n:>5} {wilson(totals['top'], n):>24} {wilson(totals['any'], n):>24} "
          f"{totals['py']:>6}")
    print(f"repositories with self-labeled fixes: {len({f.repo for f in everything})}; "
          f"by how the origin was named: {dict(Counter(f.how for f in everything))}")
    print(f"fixes with no candidate: {n - totals['traced']}: {dict(reasons)}")
    if args.save:
        args.save.write_text("".join(json.dumps(asdict(f)) + "\n" for f in everything))


def _score(warehouse: str, fixes: list[SelfLabeled], reasons: Counter[str]
           ) -> tuple[int, int, int]:
    import duckdb

    con = duckdb.connect(warehouse, read_only=True)
    top = anyhit = traced = 0
    for fix in fixes:
        ranked = [r[0] for r in con.execute(
            "SELECT candidate FROM szz_candidates WHERE sha = ? ORDER BY rank",
            [fix.sha]).fetchall()]
        if not ranked:
            row = con.execute("SELECT reason FROM szz_traces WHERE sha = ?", [fix.sha]
                              ).fetchone()
            reasons[(row[0] or "?")[:60] if row else "not mined"] += 1
            continue
        traced += 1
        top += ranked[0] in fix.named
        anyhit += bool(set(ranked) & set(fix.named))
    con.close()
    return top, anyhit, traced


if __name__ == "__main__":
    main()
