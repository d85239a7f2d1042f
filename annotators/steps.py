"""Event steps the offline annotator can derive from a diff (pure).

A builder returns steps only when every step can be placed on a line of the before version
that shows its action, with this change's names (the function, the table, the timer); it
returns None otherwise, and the label then carries no event sequence and no explanation
rather than a generic one.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from annotators.locate import Unit
from annotators.rules import SYNC
from annotators.schema import Action, BugType, EventStep


@dataclass(frozen=True)
class Derived:
    """Steps with the explanation they support, and the builder that derived them."""

    steps: list[EventStep]
    explanation: str
    source: str


_ETS = r"(?::ets\.|\bets:)"
_MNESIA = r"(?::mnesia\.|\bmnesia:)"
# (kind of shared state, how a read of it is spelled, how a write is, what the read is called)
_SHARED = (
    ("ETS table", re.compile(_ETS + r"(?:lookup\w*|member|match\w*|select|info)\b"),
     re.compile(_ETS + r"(?:insert\w*|delete\w*|update_\w+|take)\b"), "ETS read"),
    ("mnesia table", re.compile(_MNESIA + r"(?:dirty_read|read|dirty_match_object|"
                                r"match_object|dirty_index_read|index_read|dirty_select)\b"),
     re.compile(_MNESIA + r"(?:dirty_write|write|dirty_delete\w*|delete\w*)\b"), "read"),
    ("process name", re.compile(r"\bwhereis\w*|\bprocess\.alive\?|\bis_process_alive\b|"
                                r"\bregistry\.lookup\b|\bglobal[.:]whereis_name\b"),
     re.compile(r"\bregister\w*|\bstart_link\b|\bstart_child\b|\bspawn\w*|"
                r"\bregistry\.register\b"), "lookup"),
)
_ACTIONS = {"ETS table": (Action.ETS_READ, Action.ETS_WRITE),
            "mnesia table": (Action.DB_READ, Action.DB_WRITE),
            "process name": (Action.LOOKUP, Action.REGISTER)}
_FIRST_ARG = re.compile(r"(?:[.:]\w+[?!]?)\(\s*([\w.:@'?]+)")


def _lines(unit: Unit) -> list[tuple[int, str]]:
    """(line number, text) of the unit's before-version span."""
    assert unit.span.before is not None and unit.file.before is not None
    text = unit.file.before.split("\n")
    first, last = unit.span.before
    return [(n, text[n - 1]) for n in range(first, min(last, len(text)) + 1)]


def _role(unit: Unit) -> tuple[str, str]:
    """Two names for two processes running this code."""
    name = unit.span.name
    if unit.file.is_test:
        return "test process A", "test process B"
    return f"caller A of {name}", f"caller B of {name}"


def check_then_act(unit: Unit) -> Derived | None:
    """Two processes running one function that reads shared state (ETS, mnesia, a process
    name) and then writes it, where the fix changed the read or the write."""
    if unit.span.before is None or unit.file.before is None:
        return None
    changed = {n for n, _ in unit.removed}
    lines = _lines(unit)
    for kind, read, write, read_word in _SHARED:
        reads = [(n, t) for n, t in lines if read.search(t.lower())]
        for r, r_text in reads:
            w = next(((n, t) for n, t in lines if n >= r and write.search(t.lower())
                      and (n != r or not read.search(t.lower()))), None)
            if w is None or (r not in changed and w[0] not in changed):
                continue
            target = _target(r_text, kind)
            a, b = _role(unit)
            read_action, write_action = _ACTIONS[kind]
            where = dict(file=unit.file.path, function=unit.span.name)
            steps = [
                EventStep(actor=a, action=read_action, target=target, line=r, **where,
                          note=f"reads {target}"),
                EventStep(actor=b, action=read_action, target=target, line=r, **where,
                          note="reads it too, before A writes"),
                EventStep(actor=a, action=write_action, target=target, line=w[0], **where,
                          note="writes what it decided from its read"),
                EventStep(actor=b, action=write_action, target=target, line=w[0], **where,
                          note="writes from its stale read: A's update is lost or repeated"),
            ]
            why = (f"In {unit.span.name} ({unit.file.path}), the {read_word} of {target} at "
                   f"line {r} and the write at line {w[0]} are two operations, so two "
                   f"processes running {unit.span.name} can both read before either writes.")
            return Derived(steps, why, "rule:check_then_act")
    return None


def _target(text: str, kind: str) -> str:
    m = _FIRST_ARG.search(text)
    name = m.group(1) if m else ""
    return f"{kind} {name}" if name and name not in ("self", "fn") else f"the {kind}"


_CALL_WITH_TIMEOUT = re.compile(
    r"(?:gen_server|genserver|gen_statem|gen|task|agent)[.:](?:call|await|yield|get|update)\w*"
    r"\(\s*([^,()]+)?")
_TIMEOUT_WORDS = re.compile(r"\btimeout\b|\binfinity\b|\b\d{3,}\b|\bafter\b")


def call_timeout(unit: Unit) -> Derived | None:
    """A call whose timeout the fix changed: the caller waits on the callee, then gives up
    (or waits forever) while the callee is busy or gone."""
    if unit.span.before is None or unit.file.before is None:
        return None
    for n, text in unit.removed:
        low = text.lower()
        m = _CALL_WITH_TIMEOUT.search(low)
        if not m or not _TIMEOUT_WORDS.search(low):
            continue
        callee = (m.group(1) or "").strip() or "the callee"
        where = dict(file=unit.file.path, function=unit.span.name, line=n)
        caller = "test process" if unit.file.is_test else f"caller in {unit.span.name}"
        steps = [EventStep(actor=caller, action=Action.CALL, target=callee, **where,
                           note=f"calls {callee} and waits for its reply"),
                 EventStep(actor=caller, action=Action.TIMEOUT, target=callee, **where,
                           note="the wait ends at the timeout while the callee is still busy "
                                "or gone")]
        why = (f"In {unit.span.name} ({unit.file.path}), the call to {callee} at line {n} "
               f"waits with a timeout that does not match how long {callee} can take.")
        return Derived(steps, why, "rule:call_timeout")
    return None


_SEND_AFTER = re.compile(r"\bsend_after\b")
_CANCEL = re.compile(r"\bcancel_timer\b|\bsend_after\b")
_HANDLE_INFO = re.compile(r"\bhandle_info\b|\breceive\b")
_TIMER = re.compile(r"\b(?:send_after|start_timer|cancel_timer|read_timer)\b")


def _changes(unit: Unit, pattern: re.Pattern[str]) -> bool:
    """Whether the change removed or added a line of the unit that matches (lowered)."""
    return any(pattern.search(t.lower()) for _, t in (*unit.removed, *unit.added))


def stale_timer(unit: Unit, all_lines: list[tuple[int, str]]) -> Derived | None:
    """A timer armed with send_after and later cancelled or re-armed, where the fix changed
    the function's timer handling: the old timer's message is already queued, and the process
    takes it for the current one."""
    if unit.span.before is None or unit.file.before is None or not _changes(unit, _TIMER):
        return None
    lines = _lines(unit)
    armed = next(((n, t) for n, t in lines if _SEND_AFTER.search(t.lower())), None)
    if armed is None:
        return None
    again = next(((n, t) for n, t in all_lines if n != armed[0] and _CANCEL.search(t.lower())),
                 None)
    handler = next(((n, t) for n, t in all_lines if _HANDLE_INFO.search(t.lower())), None)
    if again is None or handler is None:
        return None
    owner = f"{unit.span.name}'s process"
    path = unit.file.path
    steps = [
        EventStep(actor=owner, action=Action.TIMER, target="timer", file=path,
                  function=unit.span.name, line=armed[0], note="arms a timer with send_after"),
        EventStep(actor="the timer", action=Action.SEND, target=owner, file=path,
                  function=unit.span.name, line=armed[0],
                  note="fires: its message waits in the mailbox"),
        EventStep(actor=owner, action=Action.TIMER, target="timer", file=path, line=again[0],
                  note="cancels or re-arms the timer, too late for the queued message"),
        EventStep(actor=owner, action=Action.RECEIVE, file=path, line=handler[0],
                  note="takes the stale timeout message for the current timer"),
    ]
    why = (f"In {path}, the send_after message armed at line {armed[0]} carries no reference "
           f"to its timer, so after the timer is cancelled or re-armed at line {again[0]} its "
           f"late message cannot be told from the live one.")
    return Derived(steps, why, "rule:stale_timer")


_HANDOFF = re.compile(r"\bspawn\w*|\bstart_link\b|\bstart_child\b|\btask\.(?:async|start)\w*|"
                      r"(?:gen_server|genserver|gen_statem)[.:](?:call|cast)\b|\bsend\(|"
                      r"[\w)}\]]\s+!\s+\S")
_WAIT = re.compile(r"\breceive\b|\bassert_receive\b|\btask\.await\b|\bawait\b")
_HANDOFF_TARGET = re.compile(r"(?:[.:](?:call|cast)|\bsend)\(\s*([\w.:@?]+)|([\w@]+)\s+!\s")


def _handoff(line: str, unnamed: str) -> tuple[Action, str]:
    """How a line hands work to another process (spawn, call, cast or send) and to whom: the
    first argument of the call, or `unnamed` for a process the line starts."""
    low = line.lower()
    if re.search(r"spawn|start|task\.", low):
        return Action.SPAWN, unnamed
    action = Action.CALL if re.search(r"\.call|:call", low) else (
        Action.CAST if "cast" in low else Action.SEND)
    m = _HANDOFF_TARGET.search(line)
    return action, (m.group(1) or m.group(2)) if m else unnamed


# What a fix adds so a process no longer waits blind on another: a monitor, a link, trapped
# exits, or an end to the wait (`after`).
_WATCH = re.compile(r"monitor|:down\b|'down'|\blink\(|spawn_link|trap_exit|^\s*after\b")


def unwatched_handoff(unit: Unit) -> Derived | None:
    """A process that hands work to another (spawns it, calls or messages it) and then
    waits for its answer, with no monitor, where the fix makes it watch the other process or
    stop waiting: if the other process dies first, nothing arrives and nothing notices."""
    if unit.span.before is None or unit.file.before is None or not _changes(unit, _WATCH):
        return None
    lines = _lines(unit)
    if any("monitor" in t.lower() for _, t in lines):
        return None
    handoff = next(((n, t) for n, t in lines if _HANDOFF.search(t.lower())), None)
    if handoff is None:
        return None
    wait = next(((n, t) for n, t in lines if n > handoff[0] and _WAIT.search(t.lower())), None)
    if wait is None:
        return None
    action, peer = _handoff(handoff[1], "the other process")
    owner = "test process" if unit.file.is_test else f"process running {unit.span.name}"
    where = dict(file=unit.file.path, function=unit.span.name)
    steps = [EventStep(actor=owner, action=action, target=peer, line=handoff[0], **where,
                       note=f"hands work to {peer}"),
             EventStep(actor=owner, action=Action.RECEIVE, target=peer, line=wait[0], **where,
                       note=f"waits for {peer}'s answer; if {peer} died, none comes")]
    why = (f"In {unit.span.name} ({unit.file.path}), the process hands work to {peer} at line "
           f"{handoff[0]} and waits at line {wait[0]} without a monitor, so it cannot notice "
           f"{peer} exiting before it answers.")
    return Derived(steps, why, "rule:unwatched_handoff")


_SYNC = re.compile(SYNC, re.IGNORECASE)  # a test that waits for the effect it asserts on
_TRIGGER = re.compile(r"\bsend\(|[\w)}\]]\s+!\s+\S|\bcast\(|\.cast\b|:cast\b|\bspawn\w*|"
                      r"\bstart_supervised\w*|\bstart_link\b|\btask\.(?:async|start)\w*|"
                      r"\bnotify\b|\bpublish\w*|\bbroadcast\w*")
_ASSERT = re.compile(r"^\s*(?:assert\b(?!_receive)|refute\b(?!_receive)|\?assert\w*\(|"
                     r"\?_assert\w*\()")
_SLEEP = re.compile(r"\bsleep\b")


def test_asserts_too_early(unit: Unit) -> Derived | None:
    """A test that starts asynchronous work and asserts on its effect before the work is
    done, where the fix makes the test wait for it (an assert_receive, a :sys.get_state, a
    wait_until in the added lines)."""
    if not unit.file.is_test or unit.span.before is None or unit.file.before is None:
        return None
    if not _SYNC.search("\n".join(t for _, t in unit.added).lower()):
        return None
    lines = _lines(unit)
    trigger = next(((n, t) for n, t in lines if _TRIGGER.search(t.lower())), None)
    if trigger is None:
        return None
    check = next(((n, t) for n, t in lines if n > trigger[0] and _ASSERT.match(t.lower())),
                 None)
    if check is None:
        return None
    action, peer = _handoff(trigger[1], "the process it started")
    where = dict(file=unit.file.path, function=unit.span.name)
    steps = [EventStep(actor="test process", action=action, target=peer, line=trigger[0],
                       **where, note=f"starts asynchronous work in {peer}")]
    sleep = next(((n, t) for n, t in lines if trigger[0] < n < check[0]
                  and _SLEEP.search(t.lower())), None)
    if sleep is not None:
        steps.append(EventStep(actor="test process", action=Action.TIMER, line=sleep[0],
                               **where, note="sleeps a fixed time instead of waiting for it"))
    steps += [EventStep(actor="test process", action=Action.OTHER, target=peer,
                        line=check[0], **where, note="asserts on the work's effect"),
              EventStep(actor=peer, action=Action.RECEIVE,
                        note="gets to the work only after the assertion ran (not in the "
                             "changed code)")]
    why = (f"In {unit.span.name} ({unit.file.path}), the work started at line {trigger[0]} "
           f"runs in {peer}, and nothing orders the assertion at line {check[0]} after it; "
           f"on a busy machine the assertion runs first.")
    return Derived(steps, why, "rule:test_asserts_too_early")


_TRAP_EXIT = re.compile(r"\btrap_exit\b")
_LINKED_START = re.compile(r"(?:gen_server|genserver|gen_statem|gen_event|supervisor|agent|"
                           r"proc_lib)[.:]start_link\(|\bspawn_link\(")
_TERMINATE = {"elixir": re.compile(r"^\s*def\s+terminate\("),
              "erlang": re.compile(r"^terminate\(")}
_MODULE = {"elixir": re.compile(r"^\s*defmodule\s+([\w.]+)"),
           "erlang": re.compile(r"^-module\(\s*'?([\w@.]+)")}


def untrapped_shutdown(unit: Unit) -> Derived | None:
    """A process that gains trap_exit in this change, started linked to its parent and with a
    terminate callback: before, the parent's shutdown signal killed it at once and its
    terminate never ran (OTP calls terminate on a parent's exit only for a process that
    traps exits)."""
    file = unit.file
    if file.before is None or not _TRAP_EXIT.search("\n".join(t for _, t in unit.added)):
        return None
    lines = list(enumerate(file.before.split("\n"), 1))
    if any(_TRAP_EXIT.search(t) for _, t in lines):
        return None  # it trapped exits somewhere already: another story
    terminate = _TERMINATE.get(file.language)
    start = next((n for n, t in lines if _LINKED_START.search(t.lower())), None)
    stop = next((n for n, t in lines if terminate and terminate.match(t)), None)
    if start is None or stop is None:
        return None
    pattern = _MODULE.get(file.language)
    module = next((m.group(1) for _, t in lines if pattern and (m := pattern.match(t))),
                  file.path.rsplit("/", 1)[-1].split(".")[0])
    process, parent = f"{module} process", f"parent of {module}"
    steps = [EventStep(actor=parent, action=Action.LINK, target=process, file=file.path,
                       line=start, note="starts the process linked to itself"),
             EventStep(actor=parent, action=Action.EXIT, target=process,
                       note="shuts it down with an exit signal (a restart, an application or "
                            "node stop; in the runtime, not in the changed code)"),
             EventStep(actor=process, action=Action.EXIT, target=parent, file=file.path,
                       line=stop, note="not trapping exits, dies from the signal at once: "
                                       "its terminate callback never runs")]
    why = (f"In {unit.span.name} ({file.path}), the {module} process, linked to its parent by "
           f"the start at line {start}, did not trap exits, so a shutdown signal from the "
           f"parent killed it at once and its terminate callback at line {stop} never ran its "
           f"cleanup.")
    return Derived(steps, why, "rule:untrapped_shutdown")


def derive_steps(unit: Unit | None, bug_type: BugType) -> Derived | None:
    """The steps this change shows for a bug of this type in this unit, if any."""
    if unit is None or unit.span.before is None or unit.file.before is None:
        return None
    if bug_type == BugType.RACE_CONDITION:
        return check_then_act(unit) or test_asserts_too_early(unit)
    if bug_type == BugType.TIMEOUT:
        return call_timeout(unit)
    if bug_type == BugType.RESOURCE_LEAK:
        return unwatched_handoff(unit) or untrapped_shutdown(unit)
    if bug_type == BugType.EXIT_SIGNAL:
        return untrapped_shutdown(unit)
    if bug_type == BugType.MESSAGE_ORDERING:
        text = unit.file.before.split("\n")
        return stale_timer(unit, list(enumerate(text, 1)))
    return None
