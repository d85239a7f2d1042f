"""Would a learned scorer find fixes better than the rules in repositories it never saw?

    uv run --with scikit-learn python bench/scorer_experiment.py WAREHOUSE GOLD.jsonl…

For every gold commit the warehouse holds, the features the rules see (each message cue's
weight, the negative cues, each diff rule's weight in production and test files, whether
the change is test-only or documentation-only, the classifier's score, how much of the
changed code is about processes) and the rules' own decision. Then leave-one-repository-out:
for each repository, logistic regression and gradient boosting (scikit-learn) are trained on
the other repositories' commits and decide the held-out ones. Gold commits the warehouse does
not hold count as "not kept" for every scorer, as in `racemine eval`. Prints precision and
recall with 95% Wilson intervals for the rules and each scorer, pooled over all the files.

scikit-learn is not a racemine dependency: this decides whether a learned scorer earns a
place (it has not: see the README's "Measuring quality").
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from annotators.diffs import parse_hunks
from annotators.evaluation import gold_repo_for, load_gold, wilson
from annotators.heuristic import annotate_heuristic, cue_weights, find_signals, negatives_of
from annotators.locate import only_docs, process_words
from annotators.rules import FIX_INTENT
from annotators.schema import CommitInput
from warehouse.db import open_warehouse
from warehouse.queries import read_commit_inputs, repo_names


def features(commit: CommitInput, score: float) -> dict[str, float]:
    """What the rules see of a commit, as numbers."""
    out = {f"cue_{cue.name}": weight for cue, _, weight in cue_weights(commit.message)}
    out |= {f"negative_{name}": 1.0 for name in negatives_of(commit.message)}
    files = [f for f in commit.files if f.diff]
    hunks = {f.path: parse_hunks(f.diff) for f in files}
    for f in files:
        for signal in find_signals(f):
            key = f"{'test' if f.is_test else 'code'}_{signal.rule.name}"
            out[key] = max(out.get(key, 0.0), signal.rule.weight)
    changed = "\n".join(t for f in files for h in hunks[f.path] for _, t in h.removed + h.added)
    label = annotate_heuristic(commit).label
    return out | {
        "has_code": float(bool(files)),
        "test_only": float(bool(files) and all(f.is_test for f in files)),
        "docs_only": float(bool(files) and only_docs(files, hunks)),
        "fix_in_subject": float(bool(FIX_INTENT.search(commit.message.split("\n", 1)[0]))),
        "classifier_score": score,
        "process_words": math.log1p(process_words(changed)),
        "files": math.log1p(len(files)),
        "rules": float(bool(label and label.is_concurrency_bug)),
    }


def main() -> None:
    from sklearn.ensemble import GradientBoostingClassifier
    from sklearn.feature_extraction import DictVectorizer
    from sklearn.linear_model import LogisticRegression

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("warehouse", type=Path)
    parser.add_argument("gold", type=Path, nargs="+")
    args = parser.parse_args()
    gold = [g for path in args.gold for g in load_gold(path)]
    names = {g.repo for g in gold}
    rows = []  # (repo, truth, features or None when the warehouse does not hold it)
    with open_warehouse(args.warehouse, read_only=True) as con:
        stored = {gold_repo_for(n, names): n for n in repo_names(con)}
        for g in gold:
            repo = stored.get(g.repo)
            found = read_commit_inputs(con, repo, [g.sha]) if repo else []
            score = con.execute("SELECT match_score FROM commits WHERE repo = ? AND sha = ?",
                                [repo, g.sha]).fetchone() if found else None
            rows.append((g.repo, g.is_concurrency_fix,
                         features(found[0], score[0]) if found and score else None))

    def report(name: str, decide: list[bool]) -> None:
        tp = sum(d and y for d, (_, y, _) in zip(decide, rows, strict=True))
        fp = sum(d and not y for d, (_, y, _) in zip(decide, rows, strict=True))
        fn = sum(not d and y for d, (_, y, _) in zip(decide, rows, strict=True))
        p, r = wilson(tp, tp + fp), wilson(tp, tp + fn)
        print(f"{name:46s} precision {p.value:.3f} [{p.low:.3f}, {p.high:.3f}] ({tp}/{tp + fp})"
              f"  recall {r.value:.3f} [{r.low:.3f}, {r.high:.3f}] ({tp}/{tp + fn})")

    print(f"{len(rows)} gold commits from {len(names)} repositories, "
          f"{sum(f is not None for _, _, f in rows)} held by the warehouse")
    report("rules (the default)", [bool(f and f["rules"]) for _, _, f in rows])
    scorers = {"logistic regression": lambda: LogisticRegression(C=1.0, max_iter=5000),
               "gradient boosting": lambda: GradientBoostingClassifier(
                   n_estimators=100, max_depth=2, random_state=0)}
    for name, make in scorers.items():
        for with_rules in (True, False):
            decide = [False] * len(rows)
            for held in sorted(names):
                train = [(f, y) for r, y, f in rows if r != held and f is not None]
                test = [i for i, (r, _, f) in enumerate(rows) if r == held and f is not None]
                if not test:
                    continue
                pick = (lambda f: f) if with_rules else (
                    lambda f: {k: v for k, v in f.items() if k != "rules"})
                vectors = DictVectorizer(sparse=False)
                x = vectors.fit_transform([pick(f) for f, _ in train])
                model = make().fit(x, [y for _, y in train])
                odds = model.predict_proba(vectors.transform([pick(rows[i][2]) for i in test]))
                for i, p in zip(test, odds[:, 1], strict=True):
                    decide[i] = bool(p >= 0.5)
            suffix = " + the rules' decision" if with_rules else ""
            report(f"{name}{suffix}, LORO", decide)


if __name__ == "__main__":
    main()
