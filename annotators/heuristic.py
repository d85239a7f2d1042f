"""The offline annotator: deterministic rules over the commit message and the diff."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

from annotators.checks import check_label
from annotators.diffs import Hunk, about_file_times, parse_hunks
from annotators.locate import (
    Unit,
    caller_of,
    choose_unit,
    file_location,
    function_at,
    location_of,
    only_docs,
    unchanged,
    unit_at,
    units_of,
)
from annotators.rules import (
    CAUSE_FOLLOWS,
    CUE_STATED,
    DIFF_RULES,
    FIX_INTENT,
    FIX_STATED,
    HAPPENED,
    MESSAGE_CUES,
    NAMED_AS,
    NAMING_CUES,
    NEGATIVE_CUES,
    RULED_OUT,
    STRONG_CUES,
    TOOLING,
    DiffRule,
    MessageCue,
    bare_subject,
)
from annotators.schema import (
    SCHEMA_VERSION,
    Annotation,
    BugLabel,
    BugLocation,
    BugType,
    CommitInput,
    FileInput,
    LabelChecks,
    Scope,
)
from annotators.steps import derive_steps

# Raise RULES_VERSION with every change to what the rules decide (heuristic.py, rules.py, locate.py,
# diffs.py): a new version labels every stored commit anew on the next mine, an unchanged one
# keeps the labels made before. tests/test_rules_version.py holds the labels of a fixed set of
# commits for this version and fails when they change without it.
RULES_VERSION = 117
ANNOTATOR_ID = f"heuristic/rules-v{RULES_VERSION}/schema-{SCHEMA_VERSION}"


# Negative cues that outweigh even a strong word such as "race" or "deadlock", and a diff
# rule's fingerprint (a release or a first import carries many changes).
_OVERRIDING = {"docs_only", "release", "reports_not_fixes", "filesystem_timing",
               "initial_import", "revert", "sets_aside"}
# Negatives a subject that also says it fixes outweighs ("Add a monitor to fix the leak",
# "Reproduce and fix the race in ...", "Add fix & debug info for intermittent failures").
_UNLESS_FIXED = {"feature", "sets_aside", "debugs_flake"}


@dataclass(frozen=True)
class Signal:
    """A diff rule that fired on one file, with where."""

    rule: DiffRule
    file: FileInput
    start: int | None
    end: int | None


def find_signals(file: FileInput, hunks: list[Hunk] | None = None,
                 units: list[Unit] | None = None, moved: frozenset[int] = frozenset()
                 ) -> list[Signal]:
    """Every diff rule that fires on this file (its hunks and changed functions, when read
    already), with the before-version lines it rests on. The code of functions the change
    moved whole or only re-spaced (the ids in moved, see unchanged) is no change."""
    hunks = parse_hunks(file.diff) if hunks is None else hunks
    if not hunks:
        return []
    units = units_of(file, hunks) if units is None else units
    gone = {n for u in units if id(u) in moved for n, _ in u.removed}
    arrived = {n for u in units if id(u) in moved for n, _ in u.added}
    removed_lines = [(n, t) for h in hunks for n, t in h.removed if n not in gone]
    added_lines = [(n, t) for h in hunks for n, t in h.added if n not in arrived]
    added = "\n".join(t for _, t in added_lines).lower()
    removed = "\n".join(t for _, t in removed_lines).lower()
    places: list[tuple[str, str]] | None = None  # read only for a rule that might fire
    signals = []
    for rule in DIFF_RULES:
        if rule.test_only and not file.is_test:
            continue
        if rule.added is rule.removed:  # a construct changed in place: a value, not a move
            assert rule.added is not None
            if not _changed(rule.added, removed, added):
                continue
        else:
            # one construct replaced by another needs both (the old way may stay behind
            # for older releases, the new one may have been in use elsewhere already)
            if (rule.added is not None and not rule.added.search(added)) or (
                    rule.removed is not None and not rule.removed.search(removed)):
                continue
            if places is None:
                places = _places([u for u in units if id(u) not in moved],
                                 removed_lines, added_lines)
            if not any(_shows(rule, r, a) for r, a in places):
                continue
        if rule.needs is not None and not rule.needs.search((file.after or "").lower()):
            continue
        start, end = _span(hunks, rule)
        signals.append(Signal(rule, file, start, end))
    return signals


def _places(units: list[Unit], removed: list[tuple[int, str]], added: list[tuple[int, str]]
            ) -> list[tuple[str, str]]:
    """The (removed, added) code, lowered, of each function the change modified (with the
    helpers it added and now calls or removed and called before), and of the rest of the
    file's change (other functions added or removed whole, lines outside functions): a
    construct moved or re-wrapped inside one function, or taken out into a helper it calls,
    is no change; one moved from one function to another that was there before (a link now
    made by the other process) is."""
    modified = [u for u in units if u.span.before is not None and u.span.after is not None]
    groups = _with_helpers(units, modified)
    grouped = [u for g in groups for u in g]
    held = ({n for u in grouped for n, _ in u.removed}, {n for u in grouped for n, _ in u.added})
    rest = ("\n".join(t for n, t in removed if n not in held[0]),
            "\n".join(t for n, t in added if n not in held[1]))
    return [("\n".join(t for u in g for _, t in u.removed).lower(),
             "\n".join(t for u in g for _, t in u.added).lower()) for g in groups] + [
        (rest[0].lower(), rest[1].lower())]


_CALLED = re.compile(r"(?<![\w?!])([a-z_][\w?!]*)(?:\s*\(|/\d)")


def _with_helpers(units: list[Unit], modified: list[Unit]) -> list[list[Unit]]:
    """The modified functions, each with the helpers the change added and it now calls, or
    removed and it called before (and theirs in turn); functions that call a common helper
    form one group."""
    helpers: dict[tuple[str, bool], list[Unit]] = {}  # (name, added) -> functions
    for u in units:
        if (u.span.before is None) != (u.span.after is None) and not u.span.name.startswith(
                "test "):
            helpers.setdefault((u.span.name.split("/")[0], u.span.before is None), []).append(u)
    parent = {id(u): id(u) for u in units}

    def root(key: int) -> int:
        while parent[key] != key:
            parent[key] = parent[parent[key]]
            key = parent[key]
        return key

    for u in units:
        for lines, added in ((u.added, True), (u.removed, False)):
            for name in {m.group(1) for _, t in lines for m in _CALLED.finditer(t)}:
                for h in helpers.get((name, added), ()):
                    parent[root(id(h))] = root(id(u))
    held = {root(id(u)) for u in modified}
    groups: dict[int, list[Unit]] = {}
    for u in units:  # each is modified, added or removed
        if root(id(u)) in held:
            groups.setdefault(root(id(u)), []).append(u)
    return list(groups.values())


def _shows(rule: DiffRule, removed: str, added: str) -> bool:
    """Whether a change's removed and added code (lowered) show the rule's construct new
    (its added pattern) or gone (its removed one)."""
    return (rule.added is not None and _grew(rule.added, added, removed)) or (
        rule.removed is not None and _grew(rule.removed, removed, added))


def _grew(pattern: re.Pattern[str], side: str, other: str) -> bool:
    """Whether a construct occurs more often on one side of a change than on the other: a
    line moved, re-indented or re-qualified (`monitor(` to `erlang:monitor(`) shows it on
    both."""
    found = len(pattern.findall(side))
    return found > 0 and found > len(pattern.findall(other))


def _changed(pattern: re.Pattern[str], removed: str, added: str) -> bool:
    """Whether some occurrence of a construct is on one side only, spaces aside (a timeout
    whose value changed), not merely moved or re-wrapped with the lines around it."""
    def spelled(text: str) -> Counter[str]:
        return Counter(" ".join(m.group(0).split()) for m in pattern.finditer(text))
    return bool(spelled(removed) - spelled(added) or spelled(added) - spelled(removed))


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


def cue_weights(message: str) -> list[tuple[MessageCue, str, float]]:
    """Each cue the message holds, with its phrase and its weight as this message gives it.

    A cue only in the body of a commit whose subject neither names a concurrency problem
    nor says it fixes something (a rewrite that mentions races in passing) counts half,
    unless its own sentence says the commit fixes it, the old code caused it, or when it
    happens ("There is a race…", "…a deadlock occurs when…"); any cue of the body whose
    sentence rules the bug out ("now that races are not possible") counts half. The words
    that name a bug are read in their whole sentence however the body is wrapped (see
    flowed). Pasted output is not read (see prose).
    """
    message = prose(message)
    subject = message.split("\n", 1)[0]
    whole = flowed(message)
    found = []
    for cue in MESSAGE_CUES:
        # A word that names the bug outright is read in its whole sentence, however the body
        # is wrapped; a weak word ("concurrently", "linked", "leak") only within its line.
        text = whole if cue.name in NAMING_CUES else message
        m = cue.regex.search(text)
        if not m:
            continue
        w = cue.weight if _the_point(text, subject, cue, m) else cue.weight * 0.5
        found.append((cue, m.group(0), w))
    return found


def _the_point(message: str, subject: str, cue: MessageCue, m: re.Match[str]) -> bool:
    """Whether a cue is what the commit is about: it is in the subject; or the subject names
    a concurrency problem or a fix, or the cue's sentence says the commit fixes it, what the
    old code caused or was, or when it happens, or the cue is what happened ("the check
    raced") — unless the sentence rules the bug out."""
    if m.start() <= len(subject):
        return True
    if RULED_OUT.search(message[m.end():]):
        return False
    return bool(FIX_INTENT.search(subject) or any(c.regex.search(subject) for c in MESSAGE_CUES)
                or CUE_STATED.search(message, 0, m.start())
                or CAUSE_FOLLOWS.search(message[m.end():])
                or (cue.name in STRONG_CUES and NAMED_AS.search(message, 0, m.start()))
                or (cue.name in NAMING_CUES and HAPPENED.fullmatch(m.group(0)) is not None))


def _best_cue(message: str) -> tuple[MessageCue | None, str, float]:
    """The strongest cue, its phrase, and its weight (the first of equals, in rule order);
    one the subject holds outranks a body's that is at most a little stronger: the subject
    says what the commit fixes ("fix pid leak when init failed"), the body how it shows."""
    subject = prose(message).split("\n", 1)[0].lower()
    best, phrase, weight, rank = None, "", 0.0, 0.0
    for cue, text, w in cue_weights(message):
        r = w + (_SUBJECT_BONUS if text.lower() in subject else 0.0)
        if r > rank:
            best, phrase, weight, rank = cue, text, w, r
    return best, phrase, weight


_SUBJECT_BONUS = 0.1


_FENCED = re.compile(r"```.*?(?:```|\Z)", re.DOTALL)
# Lines of a message that are pasted output or code, not prose: indented blocks, crash
# reports, stack frames, `path.erl:12:` and ` 455: ` warnings (a compiler's, dialyzer's), a
# file name alone above its warnings, quoted logs, shell and iex prompts, Erlang terms.
_NOT_PROSE = re.compile(r"^(?:    |\t|\*\*|=\w+ REPORT|"
                        r"\s*(?:\(\w+\) )?[\w./-]+\.(?:exs?|[eh]rl):\d+|"
                        r"\s*[\w./-]+\.(?:exs?|[eh]rl)\s*$|\s+\d+:\s|"
                        r"\s*[{\[]|\s*>|\s*\$ |\s*iex|\s*\d+>)")
# An Erlang or Elixir term written into the prose: a transaction's result ({atomic, ok}), or
# a tuple of atoms and variables ({shutdown, timeout}, {:error, :timeout}, {'EXIT', Pid, _}).
_TERMS = re.compile(r"\{\s*(?:atomic|aborted)\s*,[^}]*\}|"
                    r"\{\s*:?(?:'[^'\n]*'|[\w?!@]+)(?:\s*,\s*:?(?:'[^'\n]*'|[\w?!@.]+))+\s*\}")


def prose(message: str) -> str:
    """A commit message without what was pasted into it (fenced or indented code, crash
    reports, stack frames, Erlang terms such as {atomic, ok}): the words its author wrote.
    The subject is always the author's ("[worker_pool] Fix deadlock …" is no Erlang list)."""
    subject, _, body = _TERMS.sub(" ", message).partition("\n")
    lines = _FENCED.sub(" ", body).split("\n") if body else []
    return "\n".join([subject, *(line for line in lines if not _NOT_PROSE.match(line))])


# A line break inside a paragraph: not before a blank line, a list item or the end.
_WRAPPED = re.compile(r"(?<=\S)[ \t]*\r?\n"
                      r"(?![ \t]*(?:\r?\n|[-*+\u2022][ \t]|\d+[.)][ \t]|$))[ \t]*")


def flowed(message: str) -> str:
    """The body's hard-wrapped paragraphs as one line each, so that a sentence read for what
    it says about a cue ("as this will result\nin a deadlock") is whole; the subject, blank
    lines and list items keep their breaks."""
    subject, sep, body = message.partition("\n")
    return subject + sep + _WRAPPED.sub(" ", body)


def negatives_of(message: str) -> list[str]:
    """The negative cues the subject holds (names from rules.NEGATIVE_CUES)."""
    subject = message.split("\n", 1)[0]
    bare = bare_subject(message)  # "chore: bump x" reads as "bump x"
    found = []
    for name, regex in NEGATIVE_CUES:
        if regex.search(subject) or regex.search(bare):
            if name in _UNLESS_FIXED and FIX_INTENT.search(subject):
                continue
            found.append(name)
    return found


def _scope(files: tuple[FileInput, ...], location: BugLocation | None) -> Scope:
    """The located file's side; without a location, test only when every file is a test."""
    if location is not None:
        file = next((f for f in files if f.path == location.file), None)
        if file is not None:
            return Scope.TEST if file.is_test else Scope.PRODUCTION
    return Scope.TEST if files and all(f.is_test for f in files) else Scope.PRODUCTION


@dataclass(frozen=True)
class Place:
    location: BugLocation | None
    unit: Unit | None
    at_signal: bool = False  # the location is where the diff rule fired
    through: Unit | None = None  # or calls this function the fix added, where it fired


def _locate(signal: Signal | None, files: tuple[FileInput, ...], message: str,
            hunks: dict[str, list[Hunk]], units: list[Unit], moved: frozenset[int]) -> Place:
    """The changed function holding the signal, else the changed function most likely to
    hold the bug (see choose_unit), or, when that is a new production function a changed
    test calls, that test; never an export list, spec, import, attribute or doc line. Files
    with no changed function give a line range at most."""
    if signal is not None and signal.file.is_test and any(not u.file.is_test for u in units):
        signal = None  # a test that now waits for the fix's effect: the fix is elsewhere
    if signal is not None:
        unit = _signal_unit(signal, units, hunks[signal.file.path])
        if unit is not None:
            caller = caller_of(unit, units)
            if caller is not None:  # the rule fired in a function the fix added
                return Place(location_of(caller), caller, at_signal=True, through=unit)
            return Place(location_of(unit), unit, at_signal=True)
        if not signal.file.functions and signal.start:  # no spans: a head scan
            function = function_at(signal.file.before, signal.start, signal.file.language)
            return Place(BugLocation(file=signal.file.path, function=function,
                                     start_line=signal.start, end_line=signal.end), None,
                         at_signal=True)
    unit = choose_unit(units, message, moved)
    if unit is not None and unit.span.before is None and not unit.file.is_test:
        # A production function the fix added that only a changed test calls is what the
        # test needed ("max_event_age_us/0" for a flaky test): the bug lived in the test.
        caller = caller_of(unit, units)
        if caller is not None and caller.file.is_test:
            unit = caller
    if unit is not None:
        return Place(location_of(unit), unit)
    with_diff = [f for f in files if hunks[f.path]]
    if not with_diff:
        return Place(None, None)
    f = max(with_diff, key=lambda x: (not x.is_test, len(x.diff or "")))
    return Place(file_location(f, hunks[f.path]), None)


def _signal_unit(signal: Signal, units: list[Unit], hunks: list[Hunk]) -> Unit | None:
    """The changed function where the rule's change happened: for a rule that replaces one
    construct by another, the first function that lost the one and gained the other (a diff
    may rename the old construct in one place and add the new one in another); else the
    function holding the first changed line that shows the rule."""
    rule = signal.rule
    if rule.removed is not None and rule.added is not None:
        for unit in units:
            if unit.file is signal.file and _first_match(unit.removed, rule.removed) \
                    and _first_match(unit.added, rule.added):
                return unit
    for h in hunks:
        for lines, pattern, before in ((h.removed, rule.removed, True),
                                       (h.added, rule.added, False)):
            number = _first_match(lines, pattern)
            found = unit_at(units, signal.file, number, before=before) if number else None
            if found:
                return found
    return None


def _first_match(lines: Sequence[tuple[int, str]], pattern: re.Pattern[str] | None
                 ) -> int | None:
    """The number of the line where a rule's pattern first matches a hunk's side, read as
    one text: a construct may span lines (`after` and its timeout)."""
    if pattern is None or not lines:
        return None
    text = "\n".join(t for _, t in lines).lower()
    match = pattern.search(text)
    if match is None:
        return None
    return lines[text.count("\n", 0, match.start())][0]


def annotate_heuristic(commit: CommitInput) -> Annotation:
    """Label one commit from its message and diff, offline and deterministically."""
    files = tuple(f for f in commit.files if f.diff)
    hunks = {f.path: parse_hunks(f.diff) for f in files}  # read once, used by every step
    cue, phrase, msg_weight = _best_cue(commit.message)
    negatives = negatives_of(commit.message)
    units = {f.path: units_of(f, hunks[f.path]) for f in files}
    changed = [u for f in files for u in units[f.path]]  # every changed function, in order
    moved = frozenset(unchanged(changed))
    signals = [s for f in files for s in find_signals(f, hunks[f.path], units[f.path], moved)]
    signals.sort(key=lambda s: (-s.rule.weight, not _agrees(s, cue)))
    top = signals[0] if signals else None
    evidence = [f"message:{cue.name}"] if cue else []
    evidence += [f"negative:{n}" for n in negatives]
    evidence += sorted({f"diff:{s.rule.name}@{s.file.path}" for s in signals})

    diff_weight = top.rule.weight if top else 0.0
    # A fingerprint change outweighs a subject that reads as a feature or a refactoring when
    # it is in the code, or in a test when the message names a problem too: beside a new
    # feature, a test that now waits is the feature's test.
    strong_diff = diff_weight >= 0.9 and (not top.file.is_test or msg_weight >= 0.6
                                          or (all(f.is_test for f in files)
                                              and "feature" not in negatives))
    # A subject that reads as a feature outweighs even a clear word that only its body holds
    # (a test added to find a race, an option that avoids one) unless the body says the
    # commit fixes it ("Refactor credit/5\n\nAnd fix a race condition flake") or the diff is
    # a fingerprint: the subject says what the commit is for. Moving code is how many races
    # close (a check moved into the transaction, a call moved before the spawn): a subject
    # that moves code, whose body names the race or deadlock as the point, is the fix.
    outweighed = msg_weight < 0.9 or ("feature" in negatives and _only_named_in_body(
        commit.message, cue) and not _MOVES.match(bare_subject(commit.message)))
    place = _locate(top, files, commit.message, hunks, changed, moved)
    if not files and _not_a_code_fix(commit.message, phrase, negatives, msg_weight):
        label, source = _not_bug(commit, files, None, 0.6), (
            "none: not a concurrency fix; the commit changes no Elixir or Erlang code")
    elif files and all(f.path.rsplit("/", 1)[-1] == "mix.exs" for f in files) and \
            _updates_dependency(commit.message):
        label, source = _not_bug(commit, files, None, 0.65), (
            "none: not a concurrency fix; the commit updates a dependency")
    elif cue is not None and _one_item_of_many(commit.message):
        label, source = _not_bug(commit, files, place, 0.6), (
            "none: not a concurrency fix; the message names the bug only as one item of a "
            "list of changes made for something else")
    elif cue is not None and _a_loop(commit.message, cue):
        label, source = _not_bug(commit, files, place, 0.6), (
            "none: not a concurrency fix; what hangs is a loop that never ends, not a wait "
            "on another process")
    elif files and (cue is None or cue.bug_type != BugType.DEADLOCK) and \
            about_file_times(list(hunks.values())):
        label, source = _not_bug(commit, files, place, 0.6), (
            "none: not a concurrency fix; the change is about files' modification times, not "
            "processes")
    elif files and only_docs(list(files), hunks):
        label, source = _not_bug(commit, files, place, 0.7), (
            "none: not a concurrency fix; the change touches only documentation and comments")
    elif set(negatives) & _OVERRIDING or (negatives and not strong_diff and outweighed):
        label, source = _not_bug(commit, files, place, 0.65), (
            f"none: not a concurrency fix; the subject reads as {', '.join(negatives)}")
    elif not _enough(msg_weight, top, files):
        label, source = _not_bug(commit, files, place, 0.55), (
            "none: not a concurrency fix; the matched words are not stated as a fix and no "
            "diff rule fired")
    else:
        label, source = _bug(commit, cue, phrase, top, files, place, msg_weight, diff_weight)
    label, checks = _checked(label, commit)
    return Annotation(annotator=ANNOTATOR_ID, label=label, evidence=tuple(evidence),
                      explanation_source=source, checks=checks)


# A subject that updates something (a dependency, a version) in a commit with no Elixir or
# Erlang code: "Update postgrex with fixed race condition" fixes nothing here; nor does one
# that is a dependency's name and version ("Ra v2.11.0"), whose notes are the body, or that
# depends on a release ("Explicitly depend on tzdata 0.5.20").
_UPDATE = re.compile(r"^\W*(?:update|updating|bump|bumping|upgrade|upgrading|"
                     r"(?:explicitly )?depend(?:s|ing)? on)\b|"
                     r"^[\w.-]+ v?\d+(?:\.\d+)+\W*$", re.IGNORECASE)


# A hang that is a loop that never ends: no process waits on another.
_LOOPS = re.compile(r"\binfinite(?:ly)? loop|\bendless loop|\bbusy[- ]loop|"
                    r"\b(?:loop|recurs)\w* (?:\w+ ){0,5}forever|\b100\s?% (?:of )?(?:the )?CPU|"
                    # (a hang that eats CPU spins: "would hang forever chewing up a significant
                    # amount of cpu")
                    r"\b(?:chew|burn|eat|spin|pegg?)\w*\s+(?:up\s+)?(?:\w+\s+){0,5}?CPU\b",
                    re.IGNORECASE)


def _a_loop(message: str, cue: MessageCue) -> bool:
    """Whether what the message calls a hang is a loop that never ends: a hang or blocking
    it names beside a loop, or a subject that fixes a loop and names no concurrency problem
    ("Fixed infinite loop in document updates", whose body calls it the "deadlocks" seen)."""
    text = prose(message)
    if cue.name in ("hang", "blocking"):
        return _LOOPS.search(text) is not None
    subject = text.split("\n", 1)[0]
    return _LOOPS.search(subject) is not None and not cue_weights(subject)


def _only_named_in_body(message: str, cue: MessageCue | None) -> bool:
    """Whether the cue's words are in the body only, in a sentence that does not fix them."""
    text = prose(message)
    m = cue.regex.search(text) if cue else None
    return m is not None and m.start() > len(text.split("\n", 1)[0]) and not \
        FIX_STATED.search(text, 0, m.start())


# A subject (after a conventional-commit type) that moves code: "Move check for reader to …".
_MOVES = re.compile(r"\s*mov(?:e|es|ed|ing)\b", re.IGNORECASE)

# A list item of a body: a squashed pull request lists the commits it brought in.
_ITEM = re.compile(r"^\s*(?:[-*+\u2022]|\d+[.)])\s+|"
                   # (a squashed commit's subjects: "fix: sleep to avoid a flaky test")
                   r"^\s*(?:feat|fix|improvement|chore|test|docs|refactor|perf|ci|build|style)"
                   r"(?:\([^)\n]*\))?!?:\s")
# A subject that says what the change fixes or makes safer (beyond FIX_INTENT's words).
_MENDS = re.compile(r"\b(?:resolv\w*|stabili[sz]\w*|reliab\w*|resilien\w*|robust\w*|safer|"
                    r"safely)\b", re.IGNORECASE)


# An item that says what the change does to the bug: "This removes the race …", "Avoids …".
_MENDS_ITEM = re.compile(r"\s*(?:(?:this|it|which)\s+(?:\w+\s+)?)?(?:avoids|prevents|fixes|"
                         r"removes|eliminates|resolves|solves)\b", re.IGNORECASE)


def _one_item_of_many(message: str) -> bool:
    """Whether a message names the bug only in one item of a list of changes made for
    something else: the subject names no bug and no mending ("Instant block mining",
    "Message Containers (#5077)"), the body lists two or more items, and every line of it
    that holds a cue is one of them ("* Fix very rare race") — a squashed pull request whose
    race fix is a side note of a feature, a refactoring or an upgrade. An item that says
    what the change mends ("* Avoids deadlock on syncing queues") is the subject's reason,
    not one more change."""
    subject = message.split("\n", 1)[0]
    if cue_weights(subject) or FIX_INTENT.search(subject) or _MENDS.search(subject):
        return False
    lines = prose(message).split("\n")[1:]
    cued = [line for line in lines if cue_weights("-\n\n" + line)]
    changes = [line for line in lines if _ITEM.match(line)
               and not (line in cued and _MENDS_ITEM.match(_ITEM.sub("", line, count=1)))]
    if len(changes) < 2:
        return False
    return bool(cued) and all(_ITEM.match(line) for line in cued)


def _not_a_code_fix(message: str, phrase: str, negatives: list[str], msg_weight: float
                    ) -> bool:
    """Whether a commit that changes no Elixir or Erlang code is no concurrency fix: its
    message must name the bug itself (a race fixed in the JavaScript of a LiveView) — a
    flaky test alone is not one, as there it is a test marked flaky in a build file or a
    Java or browser test made stable; neither its subject nor the line that names the
    problem may be about tooling ("fixes race condition when running make with simultaneous
    jobs"), nor the subject update a dependency or a version."""
    said = next((line for line in prose(message).split("\n")
                 if phrase and phrase.lower() in line.lower()), "")
    return bool(negatives or msg_weight < 0.8 or TOOLING.search(message.split("\n", 1)[0])
                or TOOLING.search(said) or _updates_dependency(message))


def _updates_dependency(message: str) -> bool:
    """Whether the subject (after a conventional-commit type) updates or bumps something."""
    return bool(_UPDATE.match(bare_subject(message)))


def _checked(label: BugLabel, commit: CommitInput) -> tuple[BugLabel, LabelChecks]:
    """The label with what fails the trace checks taken out (a location that does not hold
    is kept at file level; steps that do not hold are dropped), and its checks."""
    label, checks = check_label(label, commit)
    update: dict[str, object] = {}
    if label.bug_location and any(f.startswith("bug_location") for f in checks.failures):
        update["bug_location"] = BugLocation(file=label.bug_location.file)
    if any(f.startswith("step ") for f in checks.failures):
        update["event_sequence"] = []
    if update:
        label, checks = check_label(label.model_copy(update=update), commit)
    return label, checks


def _enough(msg_weight: float, top: Signal | None, files: tuple[FileInput, ...]) -> bool:
    """Whether message and diff together make the case for a concurrency fix.

    A clear message suffices; so does a fingerprint diff (weight >= 0.9), though one in a
    test beside a production change needs the message to name a problem at all: there the
    test that now waits is the change's test. A weak message (a bare "timeout") needs a
    production-code signal: test changes add monitors, receives and timeouts for many
    reasons that are not fixes.
    """
    diff_weight = top.rule.weight if top else 0.0
    if msg_weight >= 0.6 or (diff_weight >= 0.9 and (
            msg_weight > 0 or not top.file.is_test or all(f.is_test for f in files))):
        return True
    return top is not None and not top.file.is_test and msg_weight >= 0.45 and diff_weight >= 0.55


def _agrees(signal: Signal, cue: MessageCue | None) -> bool:
    return cue is not None and signal.rule.bug_type == cue.bug_type


def _bug(commit: CommitInput, cue: MessageCue | None, phrase: str, top: Signal | None,
         files: tuple[FileInput, ...], place: Place, msg_weight: float,
         diff_weight: float) -> tuple[BugLabel, str]:
    if cue is not None and (msg_weight >= 0.7 or top is None):
        bug_type = cue.bug_type
    else:
        assert top is not None
        bug_type = top.rule.bug_type
    if bug_type == BugType.RACE_CONDITION and cue and cue.name == "hang":
        bug_type = BugType.DEADLOCK
    if bug_type == BugType.RACE_CONDITION and _about_order(commit.message, top):
        bug_type = BugType.MESSAGE_ORDERING
    if bug_type == BugType.RACE_CONDITION:
        bug_type = _effect_of_race(commit.message) or bug_type
    agree = top is not None and cue is not None and top.rule.bug_type == cue.bug_type
    confidence = min(0.95, 0.35 + 0.4 * msg_weight + 0.2 * diff_weight + (0.1 if agree else 0))
    if not files:  # the fix is in code racemine does not extract (JavaScript, C, ...)
        confidence = min(confidence, 0.5)
    location = place.location
    derived = derive_steps(place.unit, bug_type)
    subject = commit.message.splitlines()[0].strip() if commit.message else ""
    function = location.function if location and location.function else None
    if derived is not None:
        events, why, source = derived.steps, derived.explanation, derived.source
    elif top is not None and place.at_signal and not _explains(top.rule.bug_type, bug_type):
        events, why = [], None
        source = (f"none: the diff rule {top.rule.name} shows a {top.rule.bug_type.value} "
                  f"change, which does not explain a {bug_type.value}")
    elif top is not None and place.at_signal:
        events = []
        where = f"{function} ({location.file})" if function and location else top.file.path
        if place.through is not None:
            where += f", through the new {place.through.span.name}"
        why = f"In {where}, {top.rule.why}."
        source = f"rule:{top.rule.name}"
    elif top is not None:  # e.g. an added -spec or a test that waits now: not the bug's place
        events, why = [], None
        source = (f"none: the diff rule {top.rule.name} fired outside the changed function "
                  "the location names")
    else:
        events, why = [], None
        said = f"the message says {phrase!r}" if phrase else "only the message points at it"
        source = f"none: {said}; no diff rule recognised the change"
    fix = f"In {top.file.path}: {top.rule.fix_summary}." if top is not None else subject
    label = BugLabel(event_sequence=events, explanation=why, bug_location=location,
                     fix_summary=fix, is_concurrency_bug=True, bug_type=bug_type,
                     scope=_scope(files, location), confidence=round(confidence, 2))
    return label, source


# Bug types whose mechanisms explain each other: a missing monitor or link handling leaks
# what an exit leaves behind; a receive or call that never returns is a timeout; what races
# is the order of messages.
_RELATED = {frozenset({BugType.EXIT_SIGNAL, BugType.RESOURCE_LEAK}),
            frozenset({BugType.DEADLOCK, BugType.TIMEOUT}),
            frozenset({BugType.RACE_CONDITION, BugType.MESSAGE_ORDERING})}


def _explains(rule_type: BugType, label_type: BugType) -> bool:
    """Whether a diff rule's mechanism explains a bug of the label's type."""
    return rule_type == label_type or frozenset({rule_type, label_type}) in _RELATED


# What a race caused, as the subject names it: "fix potential leak due to race", "deadlock
# caused by a startup race" — the bug is the leak or the deadlock, the race its cause.
_EFFECT_OF_RACE = re.compile(
    r"\b(?:(leak\w*)|(dead[ -]?lock\w*|hang(?:s|ing)?|hung|stuck))\s+(?:\w+\s+){0,2}?"
    r"(?:due to|caused by|because of|from)\s+(?:an?\s+|the\s+)?(?:\w+\s+)?rac(?:e|es|y|ing)\b",
    re.IGNORECASE)


def _effect_of_race(message: str) -> BugType | None:
    """The bug type of what the subject says a race caused, if it says so."""
    m = _EFFECT_OF_RACE.search(bare_subject(message))
    if m is None:
        return None
    return BugType.RESOURCE_LEAK if m.group(1) else BugType.DEADLOCK


def _about_order(message: str, top: Signal | None) -> bool:
    """Whether the message or the strongest diff signal is about the order of messages."""
    if top is not None and top.rule.bug_type == BugType.MESSAGE_ORDERING:
        return True
    return any(c.bug_type == BugType.MESSAGE_ORDERING and c.regex.search(message)
               for c in MESSAGE_CUES)


def _not_bug(commit: CommitInput, files: tuple[FileInput, ...], place: Place | None,
             confidence: float) -> BugLabel:
    location = place.location if place else None
    return BugLabel(is_concurrency_bug=False, bug_type=BugType.NOT_CONCURRENCY,
                    scope=_scope(files, location), bug_location=location,
                    fix_summary=commit.message.splitlines()[0].strip() if commit.message
                    else "", confidence=confidence)
