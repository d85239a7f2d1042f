"""Trace checks: the part of judging a label that code can decide (pure).

Every label of every annotator is checked against the change it describes: the location is
a changed function with its real arity and lines inside its before-version span, the scope
agrees with the file; a concurrency fix has at least two steps (two actors for the types that
need two parties); each step's place exists (a changed file, a line of the before version,
inside the function it names) and shows its action near that line (a send near a send step,
an ETS call near an ETS step). A step that happens outside the changed code (in another
library's process, in the runtime) may leave its file and line empty: it is not checked, and
a label needs at least two steps that are. A step that names a place the change does not
have fails: a label is verified by what was checked, not by what was assumed.
"""

from __future__ import annotations

import re

from annotators.diffs import enclosing_function
from annotators.schema import (
    Action,
    BugLabel,
    BugLocation,
    BugType,
    CommitInput,
    EventStep,
    FileInput,
    LabelChecks,
    Scope,
    StepCheck,
)

# Types whose bug needs two parties: a race, a deadlock, an ordering between two senders.
TWO_PARTY = frozenset({BugType.RACE_CONDITION, BugType.DEADLOCK, BugType.MESSAGE_ORDERING})
NEAR = 4  # lines either side of a step's line where its action must show


def _spelled(pattern: str) -> re.Pattern[str]:
    return re.compile(pattern)  # matched against lowered code


_ETS = r"(?::ets\.|\bets:)"
_MNESIA = r"(?::mnesia\.|\bmnesia:)"
_DETS = r"(?::dets\.|\bdets:)"
_REPO = r"\brepo\.|\b\w*repo\.(?:transaction|get|one|all|insert|update|delete)"

# How each action is spelled in Elixir and Erlang code (lowered). A step passes when one of
# its spellings occurs near its line.
ACTION_SPELLINGS: dict[Action, re.Pattern[str]] = {
    Action.CALL: _spelled(r"\bcall\b|_call\b|\bcall_|\.call\(|:call\(|\bawait\w*|\byield\b|"
                          r"\bmulti_call|\bsend_request\b|\breceive_response\b|\berpc\b|"
                          r"\brpc\b|\bget_state\b|\bagent\.\w+\(|\bhandle_call\b"),
    Action.CAST: _spelled(r"\bcast\b|\w_cast\b|\bcast_|\.cast\(|:cast\(|\babcast\b"),
    Action.SEND: _spelled(r"\bsend\b|\bsend_\w+|\w_send\b|\.send\(|:send\(|"
                          r"[\w)}\]]\s+!\s+[\w{(\[:'\"]|\bcast\b|\bbroadcast\w*|\bdispatch\w*|"
                          r"\bnotify\b|\bpublish\w*|\breply\b"),
    Action.RECEIVE: _spelled(r"\breceive\b|\bhandle_info\b|\bhandle_cast\b|\bhandle_call\b|"
                             r"\bhandle_event\b|\bhandle_continue\b|\bassert_receive\w*|"
                             r"\brefute_receive\w*|\brecv\b|\bflush\w*|\bselective\b"),
    Action.REPLY: _spelled(r"\breply\b|\{:?reply,|\bnoreply\b|\breply_\w+|\w+_reply\b"),
    Action.SPAWN: _spelled(r"\bspawn\w*|\bstart_link\b|\bstart_child\b|\bstart_\w+\(|\bstart\(|"
                           r"\btask\.(?:async|start|supervisor)\w*|\bproc_lib\b|\bsupervisor\b|"
                           r"\basync\w*|\bchild_spec\b"),
    Action.LINK: _spelled(r"\blink\b|\bunlink\b|\bspawn_link\b|\bstart_link\b|\btrap_exit\b|"
                          r"\blink\(|\blinks?\b"),
    Action.MONITOR: _spelled(r"\bmonitor\w*|\bdemonitor\b"),
    Action.EXIT: _spelled(r"\bexit\w*|\{:?stop,|\bstop\b|\bterminate\w*|\bshutdown\b|\bkill\w*|"
                          r"\braise\b|\bthrow\b|\berror\(|\bcrash\w*|'exit'|:exit\b|\bdie\w*"),
    Action.DOWN: _spelled(r"\bdown\b|'down'|:down\b|\bnodedown\b|\bdemonitor\b|\bnoproc\b|"
                          r"\bnoconnection\b"),
    Action.ETS_READ: _spelled(_ETS + r"(?:lookup\w*|member|match\w*|select\w*|first|next|last|"
                              r"prev|info|tab2list|fold\w*|whereis)\b"),
    Action.ETS_WRITE: _spelled(_ETS + r"(?:insert\w*|delete\w*|update_\w+|take|select_delete|"
                               r"select_replace|new|give_away|rename|setopts)\b"),
    Action.REGISTER: _spelled(r"\bregister\w*|\bname:|\{:?via,|\{:?local,|\{:?global,|"
                              r"\bpg:join|\bpg\.join|\bgproc\b|"
                              r"\bregistry\.(?:register|unregister|update_value)\b"),
    Action.LOOKUP: _spelled(r"\bwhereis\w*|\blookup\w*|\balive\?|\bis_process_alive\b|"
                            r"\bget_members\b|\bpersistent_term\b|"
                            r"\bregistry\.(?:lookup|match|keys|select)\w*|\bgproc\b|"
                            r"\bregistered\b|\bget\(|" + _ETS + r"lookup"),
    Action.DB_READ: _spelled(_REPO + r"|" + _MNESIA + r"(?:read|dirty_read|index_read|"
                             r"match_object|select|dirty_\w+|all_keys|first|next|wread)\b|"
                             + _DETS + r"(?:lookup|match\w*|select\w*)\b|\bquery\w*|\bselect\b|"
                             r"\bfetch\w*|\bget\w*\("),
    Action.DB_WRITE: _spelled(_REPO + r"|" + _MNESIA + r"(?:write|delete\w*|transaction|"
                              r"dirty_write|dirty_delete\w*|sync_transaction|activity)\b|"
                              + _DETS + r"(?:insert\w*|delete\w*)\b|\bquery\w*|\binsert\w*|"
                              r"\bupdate\w*|\bdelete\w*|\btransaction\b|\bmulti\b"),
    Action.TIMER: _spelled(r"\btimer\w*|\bsend_after\b|\bstart_timer\b|\bcancel_timer\b|"
                           r"\bsleep\b|\bafter\b|\binterval\b|\bdeadline\b"),
    Action.TIMEOUT: _spelled(r"\btime_?outs?\b|\btimed?_?out\b|\bafter\b|\binfinity\b|"
                             r"\bdeadline\b|\w_timeout\b|\btimeout_\w+"),
}


def action_visible(action: Action, lines: list[str]) -> bool:
    """Whether one of action's spellings occurs in these lines (OTHER always does)."""
    pattern = ACTION_SPELLINGS.get(action)
    return pattern is None or pattern.search("\n".join(lines).lower()) is not None


def _name(function: str) -> tuple[str, str | None]:
    if function.startswith("test "):
        return function, None
    name, slash, arity = function.partition("/")
    return name.strip(), arity.strip() if slash else None


def _same_test(a: str, b: str) -> bool:
    """ExUnit names a test in a describe block "describe name": either form is the test."""
    a, b = a[5:].strip().strip('"'), b[5:].strip().strip('"')
    return a == b or a.endswith(" " + b) or b.endswith(" " + a)


def canonical_function(file: FileInput, function: str) -> tuple[str | None, str | None]:
    """(the changed function of file that `function` names, with its real arity; or None and
    why not). A name with a wrong or missing arity is taken for the changed function of that
    name when there is exactly one."""
    names = [f.name for f in file.functions]
    if function in names:
        return function, None
    name, _ = _name(function)
    if name.startswith("test "):
        same = [n for n in names if n.startswith("test ") and _same_test(n, name)]
    else:
        same = [n for n in names if _name(n)[0] == name]
    if len(same) == 1:
        return same[0], None
    if same:
        return None, (f"{function} is ambiguous in {file.path}: it could be any of "
                      f"{', '.join(same)}")
    listed = ", ".join(names[:12]) + (", …" if len(names) > 12 else "") or "none"
    return None, f"{function} is not a changed function of {file.path} (changed: {listed})"


def canonical_location(label: BugLabel, commit: CommitInput) -> tuple[BugLabel, list[str]]:
    """The label with its location's function spelled as the change names it, and what is
    wrong with the location (empty when nothing is)."""
    loc = label.bug_location
    if loc is None:
        return label, (["a concurrency fix needs a bug_location"]
                       if label.is_concurrency_bug and commit.files else [])
    files = {f.path: f for f in commit.files}
    file = files.get(loc.file)
    if file is None:
        if not files:
            return label, []  # nothing extracted (a JavaScript fix): nothing to check against
        return label, [f"bug_location.file {loc.file} is not one of the changed files "
                       f"({', '.join(sorted(files))})"]
    problems = []
    function = loc.function
    if function and file.functions:
        function, problem = canonical_function(file, function)
        if problem:
            problems.append(f"bug_location.function {problem}")
    if loc.start_line is not None and loc.end_line is not None and loc.start_line > loc.end_line:
        problems.append("bug_location.start_line is after end_line")
    span = _before_span(file, function) if function else None
    for value in (loc.start_line, loc.end_line):
        if value is None:
            continue
        if span and not span[0] <= value <= span[1]:
            problems.append(f"bug_location line {value} is outside {function} "
                            f"(lines {span[0]}-{span[1]} before the change)")
            break
        if file.before is not None and value > _line_count(file.before):
            problems.append(f"bug_location line {value} is past the end of {file.path} before "
                            f"the change ({_line_count(file.before)} lines)")
            break
    expected = Scope.TEST if file.is_test else Scope.PRODUCTION
    if label.is_concurrency_bug and label.scope != expected:
        problems.append(f"scope {label.scope.value} disagrees with {file.path}, a "
                        f"{'test' if file.is_test else 'production'} file")
    if function != loc.function:
        label = label.model_copy(update={"bug_location": BugLocation(
            file=loc.file, function=function, start_line=loc.start_line,
            end_line=loc.end_line)})
    return label, problems


def check_label(label: BugLabel, commit: CommitInput) -> tuple[BugLabel, LabelChecks]:
    """The label with its location canonicalised (see canonical_location), and every trace
    check of it against its commit."""
    label, failures = canonical_location(label, commit)
    steps = label.event_sequence
    if label.is_concurrency_bug:
        if len(steps) < 2:
            failures.append(f"a concurrency fix needs at least 2 event steps (has {len(steps)})")
        actors = {s.actor.strip().lower() for s in steps}
        if label.bug_type in TWO_PARTY and steps and len(actors) < 2:
            failures.append(f"a {label.bug_type.value} needs at least 2 actors (has "
                            f"{len(actors)})")
        if not (label.explanation or "").strip():
            failures.append("a concurrency fix needs an explanation")
        placed = [s for s in steps if s.file or s.line is not None]
        if len(steps) >= 2 and len(placed) < 2:
            failures.append(f"a concurrency fix needs at least 2 steps placed in the changed "
                            f"code (has {len(placed)})")
    files = {f.path: f for f in commit.files}
    outcomes = []
    for number, step in enumerate(steps, 1):
        outcome = check_step(step, files)
        outcomes.append(outcome)
        if outcome.ok is False:
            failures.append(f"step {number}: {outcome.failure}")
    return label, LabelChecks(tuple(failures), tuple(outcomes))


def check_step(step: EventStep, files: dict[str, FileInput]) -> StepCheck:
    """Whether a step's place exists in the before version and shows its action."""
    if not step.file:
        if step.line is not None or step.function:
            return StepCheck(False, "names a line or function but no file")
        return StepCheck(None, "happens outside the changed code: not checked")
    file = files.get(step.file)
    if file is None:
        return StepCheck(False, f"{step.file} is not a changed file")
    if file.before is None:
        return StepCheck(False, f"{step.file} did not exist before the change")
    lines = file.before.split("\n")
    span = _before_span(file, step.function) if step.function else None
    if step.line is None:
        if span is None:
            return StepCheck(False, "names no line; each step needs its line in the before "
                                    "version")
        window = lines[span[0] - 1:span[1]]
        line_no = span[0]
    else:
        if step.line > len(lines):
            return StepCheck(False, f"line {step.line} is past the end of {step.file} before "
                                    f"the change ({len(lines)} lines)")
        if step.function:
            problem = _function_at_line(file, step.function, step.line, span)
            if problem:
                return StepCheck(False, problem)
        window = lines[max(step.line - 1 - NEAR, 0):step.line + NEAR]
        line_no = step.line
    if not action_visible(step.action, window):
        return StepCheck(False, f"no {step.action.value} is visible near line {line_no} of "
                                f"{step.file}")
    return StepCheck(True)


def _function_at_line(file: FileInput, function: str, line: int,
                      span: tuple[int, int] | None) -> str | None:
    if span is not None:
        if span[0] <= line <= span[1]:
            return None
        return f"line {line} is outside {function} (lines {span[0]}-{span[1]})"
    found = enclosing_function(file.before, line, file.language)
    if found is None:
        return f"line {line} of {file.path} is in no function, not in {function}"
    name, arity = _name(function)
    found_name, found_arity = _name(found)
    if found_name.startswith("test "):
        same = name.startswith("test ") and _same_test(found_name, name)
    else:
        same = found_name == name and (arity is None or arity == found_arity)
    return None if same else f"line {line} is in {found}, not in {function}"


def _before_span(file: FileInput, function: str | None) -> tuple[int, int] | None:
    if not function:
        return None
    for f in file.functions:
        if f.name == function and f.before:
            return f.before
    name, arity = _name(function)
    for f in file.functions:
        other, other_arity = _name(f.name)
        if f.before and other == name and (arity is None or arity == other_arity):
            return f.before
    return None


def _line_count(text: str) -> int:
    return text.count("\n") + (0 if text.endswith("\n") else 1)
