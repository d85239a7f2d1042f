"""The trace checks: what code decides about a label, case by case."""

from __future__ import annotations

import pytest

from annotators.checks import action_visible, check_label
from annotators.schema import (
    Action,
    BugLabel,
    BugLocation,
    BugType,
    CommitInput,
    EventStep,
    Scope,
)
from tests.conftest import COUNTER_FIXED, COUNTER_RACY, POOL_DEADLOCK, POOL_FIXED, file_input

# (action, a line that shows it, a line that does not), in Elixir and in Erlang.
SPELLINGS = [
    (Action.CALL, "GenServer.call(pool, :checkout)", "Map.get(state, :pool)"),
    (Action.CALL, "gen_server:call(Pool, checkout, 5000)", "maps:get(pool, State)"),
    (Action.CAST, "GenServer.cast(pid, {:done, ref})", "send(pid, {:done, ref})"),
    (Action.CAST, "gen_server:cast(Pid, {done, Ref})", "Pid ! {done, Ref}"),
    (Action.SEND, "send(owner, {:ready, self()})", "Map.fetch!(state, :owner)"),
    (Action.SEND, "Owner ! {ready, self()}", "X = Y /= Z"),
    (Action.RECEIVE, "receive do", "Enum.reduce(list, 0, &+/2)"),
    (Action.RECEIVE, "handle_info({'DOWN', Ref, _, _, _}, State) ->", "lists:reverse(L)"),
    (Action.REPLY, "{:reply, :ok, state}", "{:noproc, state}"),
    (Action.REPLY, "gen_server:reply(From, ok)", "io:format(\"~p\", [From])"),
    (Action.SPAWN, "Task.async(fn -> work() end)", "Enum.map(xs, &work/1)"),
    (Action.SPAWN, "Pid = spawn(fun loop/0)", "Fun = fun loop/0"),
    (Action.LINK, "Process.link(pid)", "Process.put(:pid, pid)"),
    (Action.LINK, "link(Pid)", "erlang:put(pid, Pid)"),
    (Action.MONITOR, "ref = Process.monitor(pid)", "ref = make_ref()"),
    (Action.MONITOR, "Ref = erlang:monitor(process, Pid)", "Ref = erlang:make_ref()"),
    (Action.EXIT, "Process.exit(pid, :kill)", "Process.info(pid)"),
    (Action.EXIT, "{stop, normal, State}", "{ok, State}"),
    (Action.DOWN, "{:DOWN, ^ref, :process, _, reason} ->", "{:ok, ^ref} ->"),
    (Action.DOWN, "{'DOWN', Ref, process, _, Reason} ->", "{ok, Ref} ->"),
    (Action.ETS_READ, ":ets.lookup(:cache, key)", ":ets.insert(:cache, {key, 1})"),
    (Action.ETS_READ, "ets:member(cache, Key)", "ets:delete(cache, Key)"),
    (Action.ETS_WRITE, ":ets.insert_new(:cache, {key, 1})", ":ets.lookup(:cache, key)"),
    (Action.ETS_WRITE, "ets:update_counter(hits, Key, 1)", "ets:lookup(hits, Key)"),
    (Action.REGISTER, "Registry.register(MyRegistry, key, nil)", "Registry.count(MyRegistry)"),
    (Action.REGISTER, "register(my_server, self())", "io:format(\"~p\", [self()])"),
    (Action.LOOKUP, "Process.whereis(MyServer)", "Process.sleep(10)"),
    (Action.LOOKUP, "case whereis(my_server) of", "case self() of"),
    (Action.DB_READ, "Repo.get(User, id)", "Map.new(users)"),
    (Action.DB_READ, "mnesia:dirty_read(users, Id)", "lists:keyfind(Id, 1, Users)"),
    (Action.DB_WRITE, "Repo.insert!(changeset)", "Map.put(users, id, user)"),
    (Action.DB_WRITE, "mnesia:write(Rec)", "lists:keystore(Id, 1, Users, Rec)"),
    (Action.TIMER, "Process.send_after(self(), :tick, 1000)", "Process.flag(:trap_exit, true)"),
    (Action.TIMER, "erlang:start_timer(1000, self(), tick)", "erlang:self()"),
    (Action.TIMEOUT, "after 5_000 -> :timeout", "x -> :ok"),
    (Action.TIMEOUT, "gen_server:call(P, ping, infinity)", "gen_server:call(P, ping)"),
]


@pytest.mark.parametrize(("action", "shows", "hides"), SPELLINGS,
                         ids=[f"{a.value}-{i}" for i, (a, _, _) in enumerate(SPELLINGS)])
def test_action_spellings(action: Action, shows: str, hides: str) -> None:
    assert action_visible(action, [shows])
    assert not action_visible(action, [hides])


def test_other_needs_no_spelling() -> None:
    assert action_visible(Action.OTHER, ["x = 1"])


COUNTER = CommitInput("r", "s", "Fix race", (
    file_input("lib/counter.ex", COUNTER_RACY, COUNTER_FIXED),))
POOL = CommitInput("r", "p", "Fix deadlock", (
    file_input("src/pool.erl", POOL_DEADLOCK, POOL_FIXED, language="erlang"),))


def _step(actor: str, action: Action, line: int | None, function: str | None = "bump/1",
          file: str | None = "lib/counter.ex") -> EventStep:
    return EventStep(actor=actor, action=action, file=file, function=function, line=line)


def _race(steps: list[EventStep], function: str | None = "bump/1", start: int | None = 12,
          end: int | None = 13, scope: Scope = Scope.PRODUCTION,
          file: str = "lib/counter.ex") -> BugLabel:
    return BugLabel(event_sequence=steps, explanation="Two callers read, then both write.",
                    bug_location=BugLocation(file=file, function=function, start_line=start,
                                             end_line=end),
                    fix_summary="atomic update", is_concurrency_bug=True,
                    bug_type=BugType.RACE_CONDITION, scope=scope, confidence=0.8)


GOOD = [_step("caller A", Action.ETS_READ, 12), _step("caller B", Action.ETS_READ, 12),
        _step("caller A", Action.ETS_WRITE, 13), _step("caller B", Action.ETS_WRITE, 13)]


def test_a_label_that_holds_passes() -> None:
    label, checks = check_label(_race(GOOD), COUNTER)
    assert checks.passed, checks.failures
    assert [s.ok for s in checks.steps] == [True] * 4
    assert label.bug_location == _race(GOOD).bug_location


@pytest.mark.parametrize(("label", "failure"), [
    (_race(GOOD[:1]), "needs at least 2 event steps"),
    (_race([GOOD[0], _step("caller A", Action.ETS_WRITE, 13)]), "needs at least 2 actors"),
    (_race(GOOD, function="bump/1", start=1, end=2), "line 1 is outside bump/1 (lines 11-16"),
    (_race(GOOD, function="checkin/1"), "checkin/1 is not a changed function"),
    (_race(GOOD, scope=Scope.TEST), "scope test disagrees with lib/counter.ex"),
    (_race(GOOD, file="lib/other.ex"), "bug_location.file lib/other.ex is not one of"),
    (_race([*GOOD[:3], _step("caller B", Action.SEND, 13)]), "step 4: no send is visible"),
    (_race([*GOOD[:3], _step("caller B", Action.ETS_WRITE, 400)]), "step 4: line 400 is past"),
    (_race([*GOOD[:3], _step("caller B", Action.ETS_WRITE, 6)]),
     "step 4: line 6 is outside bump/1"),
    (_race([*GOOD[:3], _step("caller B", Action.ETS_WRITE, 12, file="lib/x.ex")]),
     "step 4: lib/x.ex is not a changed file"),
    (_race([*GOOD[:3], _step("caller B", Action.ETS_WRITE, None, function=None)]),
     "step 4: names no line"),
], ids=["one step", "one actor", "lines outside", "not changed", "scope", "file", "action",
        "past the end", "outside the function", "other file", "no place"])
def test_each_check_fails_on_its_own(label: BugLabel, failure: str) -> None:
    _, checks = check_label(label, COUNTER)
    assert not checks.passed
    assert any(failure in f for f in checks.failures), checks.failures


def test_a_wrong_arity_is_canonicalised_to_the_changed_function() -> None:
    label, checks = check_label(_race(GOOD, function="bump/7"), COUNTER)
    assert label.bug_location is not None and label.bug_location.function == "bump/1"
    assert checks.passed, checks.failures


def test_erlang_deadlock_steps_in_a_gen_server() -> None:
    """A call cycle in an Erlang gen_server: the client's call where the server receives it,
    then the server calling itself, both in handle_call/3."""
    lines = POOL_DEADLOCK.split("\n")
    head = next(i for i, t in enumerate(lines, 1) if t.startswith("handle_call"))
    self_call = next(i for i, t in enumerate(lines, 1) if "gen_server:call(self()" in t)
    steps = [EventStep(actor="client", action=Action.CALL, target="pool", file="src/pool.erl",
                       function="handle_call/3", line=head),
             EventStep(actor="pool server", action=Action.CALL, target="pool",
                       file="src/pool.erl", function="handle_call/3", line=self_call)]
    label = BugLabel(event_sequence=steps, explanation="The pool calls itself.",
                     bug_location=BugLocation(file="src/pool.erl", function="handle_call/3"),
                     fix_summary="inline", is_concurrency_bug=True, bug_type=BugType.DEADLOCK,
                     scope=Scope.PRODUCTION, confidence=0.9)
    _, checks = check_label(label, POOL)
    assert checks.passed, checks.failures


def test_a_not_a_fix_label_needs_no_steps() -> None:
    label = BugLabel(fix_summary="docs", is_concurrency_bug=False,
                     bug_type=BugType.NOT_CONCURRENCY, scope=Scope.PRODUCTION, confidence=0.7)
    assert check_label(label, COUNTER)[1].passed


def test_a_step_outside_the_changed_code_is_not_checked_but_two_must_be() -> None:
    outside = EventStep(actor="runtime", action=Action.EXIT, note="the node goes down")
    _, checks = check_label(_race([*GOOD[:2], outside]), COUNTER)
    assert checks.passed, checks.failures
    assert checks.steps[2].ok is None
    _, checks = check_label(_race([GOOD[0], outside]), COUNTER)
    assert any("at least 2 steps placed" in f for f in checks.failures)
