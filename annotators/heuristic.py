"""The offline annotator: deterministic rules over the commit message and the diff."""

from __future__ import annotations

import re
from dataclasses import dataclass

from annotators.diffs import Hunk, enclosing_function, parse_hunks
from annotators.rules import (
    CUE_STATED,
    DIFF_RULES,
    FIX_INTENT,
    MESSAGE_CUES,
    NEGATIVE_CUES,
    DiffRule,
    MessageCue,
)
from annotators.schema import (
    SCHEMA_VERSION,
    Annotation,
    BugLabel,
    BugLocation,
    BugType,
    CommitInput,
    FileInput,
    Scope,
)

# Raise RULES_VERSION with every change to what the rules decide (heuristic.py, rules.py,
# diffs.py): a new version labels every stored commit anew on the next mine, an unchanged one
# keeps the labels made before. tests/test_rules_version.py holds the labels of a fixed set of
# commits for this version and fails when they change without it.
RULES_VERSION = 14
ANNOTATOR_ID = f"heuristic/rules-v{RULES_VERSION}/schema-{SCHEMA_VERSION}"


# Negative cues that outweigh even a strong word such as "race" or "deadlock".
_OVERRIDING = {"docs_only", "release", "reports_not_fixes", "filesystem_timing"}


@dataclass(frozen=True)
class Signal:
    """A diff rule that fired on one file, with where."""

    rule: DiffRule
    file: FileInput
    start: int | None
    end: int | None


def find_signals(file: FileInput) -> list[Signal]:
    """Every diff rule that fires on this file, with the before-version lines it rests on."""
    hunks = parse_hunks(file.diff)
    if not hunks:
        return []
    added = "\n".join(text for h in hunks for _, text in h.added).lower()
    removed = "\n".join(text for h in hunks for _, text in h.removed).lower()
    signals = []
    for rule in DIFF_RULES:
        if rule.test_only and not file.is_test:
            continue
        if rule.removed is None:  # the construct must be new, not merely re-qualified
            assert rule.added is not None
            found = rule.added.findall(added)
            if not found or len(found) <= len(rule.added.findall(removed)):
                continue
        elif not rule.removed.search(removed) or (
                rule.added is not None and not rule.added.search(added)):
            continue
        start, end = _span(hunks, rule)
        signals.append(Signal(rule, file, start, end))
    return signals


def _span(hunks: list[Hunk], rule: DiffRule) -> tuple[int | None, int | None]:
    """The before-version line range of the first hunk that shows the rule's change."""
    for h in hunks:
        if rule.removed is not None and any(rule.removed.search(t.lower())
                                            for _, t in h.removed):
            return _hunk_range(h)
        if rule.added is not None and any(rule.added.search(t.lower()) for _, t in h.added):
            return _hunk_range(h)
    return _hunk_range(hunks[0])


def _hunk_range(h: Hunk) -> tuple[int | None, int | None]:
    if h.removed:
        return h.removed[0][0], h.removed[-1][0]
    if h.before_len == 0:  # pure insertion after line before_start
        line = max(h.before_start, 1)
        return line, line
    return h.before_start, h.before_end


def _best_cue(message: str) -> tuple[MessageCue | None, str, float]:
    """The strongest cue, its phrase, and its weight as this message gives it.

    A cue only in the body of a commit whose subject neither names a concurrency problem
    nor says it fixes something (a rewrite that mentions races in passing) counts half,
    unless its own sentence says the commit fixes or the old code caused it.
    """
    subject = message.split("\n", 1)[0]
    best, phrase, weight = None, "", 0.0
    for cue in MESSAGE_CUES:
        m = cue.regex.search(message)
        if not m:
            continue
        w = cue.weight
        if m.start() > len(subject) and not FIX_INTENT.search(subject) and not any(
                c.regex.search(subject) for c in MESSAGE_CUES) and not CUE_STATED.search(
                message, 0, m.start()):
            w *= 0.5
        if w > weight:
            best, phrase, weight = cue, m.group(0), w
    return best, phrase, weight


# A Conventional Commits type, "chore(deps): " or "refactor!: ", before what the subject says.
_CONVENTIONAL = re.compile(r"^\s*[a-z]+(?:\([^)]*\))?!?:\s*", re.IGNORECASE)


def _negatives(message: str) -> list[str]:
    subject = message.split("\n", 1)[0]
    bare = _CONVENTIONAL.sub("", subject, count=1)  # "chore: bump x" reads as "bump x"
    found = []
    for name, regex in NEGATIVE_CUES:
        if regex.search(subject) or regex.search(bare):
            if name == "feature" and FIX_INTENT.search(subject):
                continue
            found.append(name)
    return found


def _scope(files: tuple[FileInput, ...]) -> Scope:
    return Scope.TEST if files and all(f.is_test for f in files) else Scope.PRODUCTION


def _location(signal: Signal | None, files: tuple[FileInput, ...]) -> BugLocation | None:
    if signal is not None:
        f, start, end = signal.file, signal.start, signal.end
    else:
        with_diff = [f for f in files if parse_hunks(f.diff)]
        if not with_diff:
            return None
        # The largest change in production code, else in tests.
        f = max(with_diff, key=lambda x: (not x.is_test, len(x.diff or "")))
        start, end = _hunk_range(parse_hunks(f.diff)[0])
    function = _function_at(f, start) if start else None
    return BugLocation(file=f.path, function=function, start_line=start, end_line=end)


def _function_at(file: FileInput, line: int) -> str | None:
    """The changed function around a before-version line: the narrowest tree-sitter unit,
    else the nearest head above it."""
    around = [(end - start, name) for name, start, end in file.functions
              if start <= line <= end]
    if around:
        return min(around)[1]
    return enclosing_function(file.before, line, file.language)


def annotate_heuristic(commit: CommitInput) -> Annotation:
    """Label one commit from its message and diff, offline and deterministically."""
    files = tuple(f for f in commit.files if f.diff)
    cue, phrase, msg_weight = _best_cue(commit.message)
    negatives = _negatives(commit.message)
    signals = [s for f in files for s in find_signals(f)]
    signals.sort(key=lambda s: (-s.rule.weight, not _agrees(s, cue)))
    top = signals[0] if signals else None
    evidence = [f"message:{cue.name}"] if cue else []
    evidence += [f"negative:{n}" for n in negatives]
    evidence += sorted({f"diff:{s.rule.name}@{s.file.path}" for s in signals})
    scope = _scope(files)

    diff_weight = top.rule.weight if top else 0.0
    strong_diff = diff_weight >= 0.9
    if not files and (negatives or msg_weight < 0.7):
        label = _not_bug(commit, scope, None, 0.6,
                         "The commit changes no Elixir or Erlang code and its message does not "
                         "clearly describe a concurrency fix.")
    elif negatives and not strong_diff and (msg_weight < 0.9 or set(negatives) & _OVERRIDING):
        label = _not_bug(commit, scope, _location(top, files), 0.65,
                         f"The keywords are used in a sense that is not a concurrency fix "
                         f"({', '.join(negatives)}).")
    elif not _enough(msg_weight, top):
        label = _not_bug(commit, scope, _location(top, files), 0.55,
                         "Neither the message nor the diff shows a concurrency bug being "
                         "fixed; the matched words are incidental.")
    else:
        label = _bug(commit, cue, phrase, top, files, scope, msg_weight, diff_weight)
    return Annotation(annotator=ANNOTATOR_ID, label=label, evidence=tuple(evidence))


def _enough(msg_weight: float, top: Signal | None) -> bool:
    """Whether message and diff together make the case for a concurrency fix.

    A clear message suffices; so does a fingerprint diff (weight >= 0.9). A weak message
    (a bare "timeout") needs a production-code signal: test changes add monitors, receives
    and timeouts for many reasons that are not fixes.
    """
    diff_weight = top.rule.weight if top else 0.0
    if msg_weight >= 0.6 or diff_weight >= 0.9:
        return True
    return top is not None and not top.file.is_test and msg_weight >= 0.45 and diff_weight >= 0.55


def _agrees(signal: Signal, cue: MessageCue | None) -> bool:
    return cue is not None and signal.rule.bug_type == cue.bug_type


def _bug(commit: CommitInput, cue: MessageCue | None, phrase: str, top: Signal | None,
         files: tuple[FileInput, ...], scope: Scope, msg_weight: float,
         diff_weight: float) -> BugLabel:
    if cue is not None and (msg_weight >= 0.7 or top is None):
        bug_type = cue.bug_type
    else:
        assert top is not None
        bug_type = top.rule.bug_type
    if bug_type == BugType.RACE_CONDITION and cue and cue.name == "hang":
        bug_type = BugType.DEADLOCK
    agree = top is not None and cue is not None and top.rule.bug_type == cue.bug_type
    confidence = min(0.95, 0.35 + 0.4 * msg_weight + 0.2 * diff_weight + (0.1 if agree else 0))
    if not files:  # the fix is in code racemine does not extract (JavaScript, C, ...)
        confidence = min(confidence, 0.5)
    location = _location(top, files)
    where = location.file if location else "the changed code"
    if location and location.function:
        where += f" ({location.function})"
    if top is not None:
        events = list(top.rule.events)
        fix = f"In {top.file.path}: {top.rule.fix_summary}."
        why = f"In {where}, {top.rule.why}."
    else:
        events = _generic_events(bug_type)
        fix = f"Changed {where} as described: {commit.message.splitlines()[0].strip()}."
        kind = bug_type.value.replace("_", " ")
        why = f"The commit message speaks of {'an' if kind[0] in 'aeiou' else 'a'} {kind}."
    if phrase:
        why = f"The message says {phrase!r}. {why}"
    return BugLabel(is_concurrency_bug=True, bug_type=bug_type, scope=scope,
                    bug_location=location, event_sequence=events, explanation=why,
                    fix_summary=fix, confidence=round(confidence, 2))


def _not_bug(commit: CommitInput, scope: Scope, location: BugLocation | None,
             confidence: float, why: str) -> BugLabel:
    return BugLabel(is_concurrency_bug=False, bug_type=BugType.NOT_CONCURRENCY, scope=scope,
                    bug_location=location, event_sequence=[], explanation=why,
                    fix_summary=commit.message.splitlines()[0].strip() if commit.message
                    else "", confidence=confidence)


_GENERIC = {
    BugType.RACE_CONDITION: ("1. two processes act on shared state concurrently",
                             "2. their operations interleave in an unexpected order",
                             "3. one observes or overwrites the other's partial update"),
    BugType.DEADLOCK: ("1. process A waits synchronously on process B",
                       "2. B is itself waiting on A (or on a message that never comes)",
                       "3. both block until a timeout fires or forever"),
    BugType.LIVELOCK: ("1. processes react to each other's state changes",
                       "2. each retries in response to the other",
                       "3. they keep working without making progress"),
    BugType.MESSAGE_ORDERING: ("1. two messages are sent to a process from different sources",
                               "2. they arrive in the other order than the code assumes",
                               "3. the process handles the second as if it were the first"),
    BugType.TIMEOUT: ("1. a caller waits on another process with a timeout",
                      "2. the callee is blocked or busy longer than the timeout",
                      "3. the caller gives up and its late reply is mishandled"),
    BugType.MAILBOX_OVERFLOW: ("1. messages arrive faster than they are handled",
                               "2. the mailbox grows", "3. memory and latency grow unbounded"),
    BugType.RESOURCE_LEAK: ("1. a process, monitor, timer or port is created for some work",
                            "2. the owner exits or the work ends on an unexpected path",
                            "3. nothing cleans it up and it outlives its purpose"),
    BugType.EXIT_SIGNAL: ("1. a linked process exits",
                          "2. the exit signal propagates to this process",
                          "3. it is not trapped or handled as the code expects"),
}


def _generic_events(bug_type: BugType) -> list[str]:
    return list(_GENERIC.get(bug_type, ("1. processes interleave in an unexpected order",
                                        "2. shared state or messages are observed mid-change",
                                        "3. the code's assumption about ordering breaks")))
