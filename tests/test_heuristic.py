"""The heuristic annotator: BEAM diff signals and message cues to a validated label."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from annotators.heuristic import (
    ANNOTATOR_ID,
    annotate_heuristic,
    cue_weights,
    find_signals,
    flowed,
    negatives_of,
    prose,
)
from annotators.locate import process_words
from annotators.rules import _code
from annotators.schema import BugLabel, BugType, CommitInput, Scope
from tests.conftest import (
    COUNTER_FIXED,
    COUNTER_RACY,
    COUNTER_TEST_FIXED,
    COUNTER_TEST_FLAKY,
    POOL_DEADLOCK,
    POOL_FIXED,
    file_input,
)


def _diff(before: str, after: str, path: str) -> str:
    import difflib

    return "".join(difflib.unified_diff(before.splitlines(True), after.splitlines(True),
                                        f"a/{path}", f"b/{path}"))


def _commit(message: str, path: str, before: str, after: str, language: str = "elixir",
            is_test: bool = False) -> CommitInput:
    return CommitInput("r", "s", message, (file_input(path, before, after, language, is_test),))


_PLAIN = "defmodule A do\n  def a, do: 1\nend\n"


def _label(commit: CommitInput) -> BugLabel:
    label = annotate_heuristic(commit).label
    assert label is not None
    return label


def _label_of_message(message: str, path: str = "lib/a.ex") -> BugLabel | None:
    """The label of a commit whose diff shows nothing: only its message can speak."""
    return annotate_heuristic(_commit(message, path, _PLAIN, _PLAIN.replace("1", "2"))).label


def _is_fix(message: str, path: str = "lib/a.ex") -> bool:
    """Whether the message alone (its diff shows nothing) makes a concurrency fix."""
    label = _label_of_message(message, path)
    assert label is not None
    return label.is_concurrency_bug


def test_ets_check_then_act() -> None:
    """lookup+insert replaced by update_counter is a race located in the function."""
    ann = annotate_heuristic(_commit("Fix race condition in Counter.bump", "lib/counter.ex",
                                     COUNTER_RACY, COUNTER_FIXED))
    label = ann.label
    assert label is not None and label.is_concurrency_bug
    assert label.bug_type == BugType.RACE_CONDITION and label.scope == Scope.PRODUCTION
    assert label.bug_location is not None
    assert label.bug_location.file == "lib/counter.ex"
    assert label.bug_location.function == "bump/1"
    assert (label.bug_location.start_line, label.bug_location.end_line) == (12, 15)
    assert "diff:ets_check_then_act@lib/counter.ex" in ann.evidence
    steps = label.event_sequence
    assert [(s.actor, s.action.value, s.line) for s in steps] == [
        ("caller A of bump/1", "ets_read", 12), ("caller B of bump/1", "ets_read", 12),
        ("caller A of bump/1", "ets_write", 13), ("caller B of bump/1", "ets_write", 13)]
    assert all(s.target == "ETS table :counters" and s.function == "bump/1" for s in steps)
    assert label.explanation is not None and ":counters at line 12" in label.explanation
    assert ann.explanation_source == "rule:check_then_act"
    assert ann.checks is not None and ann.checks.passed, ann.checks
    assert ann.annotator == ANNOTATOR_ID


def test_call_to_self_is_a_deadlock_even_with_vague_message() -> None:
    """gen_server:call(self(), …) removed is a deadlock whatever the message says."""
    label = annotate_heuristic(_commit("Fix pool hang on checkout", "src/pool.erl",
                                       POOL_DEADLOCK, POOL_FIXED, "erlang")).label
    assert label is not None and label.bug_type == BugType.DEADLOCK
    assert label.bug_location is not None and label.bug_location.function == "handle_call/3"


@pytest.mark.parametrize(("subject", "fix"), [
    ("Rework the counter test", True),  # the fingerprint speaks for a neutral subject
    ("HTTP/1 test refactor (#616)", False),
    ("Refactor the counter test\n\nIt raced the listener: a sleep waited for the bump.", True),
])
def test_a_tests_fingerprint_does_not_outweigh_a_refactoring_that_names_no_problem(
        subject: str, fix: bool) -> None:
    """A sleep made a wait in a commit that only changes tests makes a fix of a neutral
    subject, but not of a refactoring of the tests whose message names no problem."""
    label = annotate_heuristic(_commit(subject, "test/counter_test.exs", COUNTER_TEST_FLAKY,
                                       COUNTER_TEST_FIXED, is_test=True)).label
    assert label is not None and label.is_concurrency_bug is fix, subject


def test_sleep_replaced_by_assert_receive_is_a_test_race() -> None:
    """A sleep replaced by assert_receive in a test is a race in test scope."""
    label = annotate_heuristic(_commit("Fix flaky counter test", "test/counter_test.exs",
                                       COUNTER_TEST_FLAKY, COUNTER_TEST_FIXED,
                                       is_test=True)).label
    assert label is not None and label.is_concurrency_bug
    assert label.bug_type == BugType.RACE_CONDITION and label.scope == Scope.TEST
    assert label.bug_location is not None
    assert label.bug_location.function == 'test "bump notifies the listener"'
    lines = COUNTER_TEST_FLAKY.split("\n")
    spawn, sleep, check = (next(i for i, t in enumerate(lines, 1) if word in t)
                           for word in ("spawn(", "Process.sleep", "assert ["))
    assert [(s.actor, s.action.value, s.line) for s in label.event_sequence] == [
        ("test process", "spawn", spawn), ("test process", "timer", sleep),
        ("test process", "other", check), ("the process it started", "receive", None)]
    assert label.explanation is not None and f"line {check}" in label.explanation


@pytest.mark.parametrize("message", [
    "Docs: explain race conditions",
    "Improve error message when a deadlock is detected",
    "Avoid filesystem race condition on mtime in test",
    "Do not leak variables between default args",
    "Bump timeout to infinity",
    "chore(deps): bump ehttpc to 0.4.8 to fix a race condition",
    "Fix a low hanging fruit todo",
    "Fix a number of low-hanging todos",
    "Use socket_ref to avoid leaking socket details",
    'Revert "Fix iex test race condition"',
    "Fix out-of-order arguments in the shell loop",
    "Reorder arguments to CC for linking",
    "fix: reorder authn when updating",
    "fix: set max concurrency to lower number",
    "Use run_tracked/2 for debugging a stuck application",
    "Actually fail when deadlock is found in mam prefs",
    "Fix the default concurrency level of the stream",
])
def test_keyword_false_positives(message: str) -> None:
    """Words used in a non-bug sense give not_concurrency when the diff shows nothing."""
    label = _label_of_message(message)
    assert label is not None and not label.is_concurrency_bug
    assert label.bug_type == BugType.NOT_CONCURRENCY


def test_without_elixir_or_erlang_code() -> None:
    """With no extracted file, a clear fix message is kept at low confidence; a vague one not."""
    js = annotate_heuristic(CommitInput("r", "s", "Fix race condition on live patch", ())).label
    assert js is not None and js.is_concurrency_bug and js.confidence <= 0.5
    assert js.bug_location is None
    vague = annotate_heuristic(CommitInput("r", "s", "Fix timeout handling", ())).label
    assert vague is not None and not vague.is_concurrency_bug
    docs = annotate_heuristic(CommitInput("r", "s", "Docs: explain races", ())).label
    assert docs is not None and not docs.is_concurrency_bug
    make = annotate_heuristic(CommitInput(
        "r", "s", "make deps/.built depend on deps/.got\n\nfixes race condition when running "
        "make with simultaneous jobs", ())).label
    assert make is not None and not make.is_concurrency_bug  # the build's race, not the BEAM's


@pytest.mark.parametrize("subject", ["Mark the cluster suite as flaky in bazel",
                                     "Fix a flaky Java client test",
                                     "Reduce flakiness of the browser tests"])
def test_a_flaky_test_with_no_code_is_not_a_fix(subject: str) -> None:
    """With no Elixir or Erlang code, "flaky" is a test marked flaky in a build file or a
    test in another language made stable, not a BEAM race."""
    label = annotate_heuristic(CommitInput("r", "s", subject, ())).label
    assert label is not None and not label.is_concurrency_bug


@pytest.mark.parametrize("subject", ["Update postgrex with fixed race condition",
                                     "fix(pulsar): update pulsar -> 0.8.3 to fix a deadlock",
                                     "Bump gen_leader: fixes the race on DOWN",
                                     "gen_leader v2.11.0\n\n* Fix a deadlock on DOWN",
                                     "Explicitly depend on tzdata 0.5.20\n\nThis release fixes "
                                     "the intermittent GenServer error."])
def test_a_dependency_update_with_no_code_is_not_a_fix(subject: str) -> None:
    """A commit with no Elixir or Erlang code whose subject updates a dependency or version
    fixes nothing in this repository, whatever it says was fixed upstream; nor does one that
    changes only the dependencies in mix.exs."""
    label = annotate_heuristic(CommitInput("r", "s", subject, ())).label
    assert label is not None and not label.is_concurrency_bug
    mix = ('defmodule App.MixProject do\n  use Mix.Project\n\n'
           '  defp deps do\n    [{:poolboy, "~> 1.4"}]\n  end\nend\n')
    bumped = _label(_commit(subject, "mix.exs", mix, mix.replace("1.4", "1.5")))
    assert not bumped.is_concurrency_bug


def test_weak_message_needs_production_signal() -> None:
    """A bare "timeout" with only test-side monitors is not enough to call it a fix."""
    before = "defmodule ATest do\n  test \"a\" do\n    :ok\n  end\nend\n"
    after = before.replace(":ok", "ref = Process.monitor(pid)")
    label = annotate_heuristic(_commit("Reset the idle timeout when sending data",
                                       "test/a_test.exs", before, after, is_test=True)).label
    assert label is not None and not label.is_concurrency_bug


def test_label_schema_rejects_inconsistent_type() -> None:
    """bug_type not_concurrency goes with is_concurrency_bug false, and only with it."""
    with pytest.raises(ValidationError):
        BugLabel(is_concurrency_bug=True, bug_type=BugType.NOT_CONCURRENCY,
                 scope=Scope.PRODUCTION, explanation="x", fix_summary="y", confidence=0.5)
    with pytest.raises(ValidationError):
        BugLabel(is_concurrency_bug=False, bug_type=BugType.DEADLOCK, scope=Scope.TEST,
                 explanation="x", fix_summary="y", confidence=1.5)


@pytest.mark.parametrize(("message", "bug_type"), [
    ("Do not leak EXIT messages on dispatch", BugType.EXIT_SIGNAL),
    ("Fix message leak in async_stream", BugType.MESSAGE_ORDERING),
    ("Avoid sending late reply messages to callers", BugType.MESSAGE_ORDERING),
    ("Trap exits to fix flaky test", BugType.EXIT_SIGNAL),
    ("Fix leak of monitor processes on shutdown", BugType.RESOURCE_LEAK),
    ("Avoid selective-receive mailbox scans under load", BugType.MAILBOX_OVERFLOW),
    ("avoid mutual blocking of caches", BugType.DEADLOCK),
    ("Fix event/message out of order", BugType.MESSAGE_ORDERING),
    ("Fix replies reordered after a reconnect", BugType.MESSAGE_ORDERING),
    ("Fix the pool and its workers waiting on each other", BugType.DEADLOCK),
    # what a race caused is the bug; the race is its cause
    ("fix(resource manager): fix potential leak due to race", BugType.RESOURCE_LEAK),
    ("Fix deadlock caused by a startup race", BugType.DEADLOCK),
    # an EXIT queued behind requests is the order messages are handled in
    ("Fix uncovered bug\n\nThis caused a race condition: the EXIT message would come in "
     "behind the checkout messages.", BugType.MESSAGE_ORDERING),
    ("Fix race in the leak check", BugType.RACE_CONDITION),
])
def test_bug_type_names_the_cause(message: str, bug_type: BugType) -> None:
    """Messages left in a mailbox are delivery bugs; leaked processes are leaks."""
    label = _label_of_message(message)
    assert label is not None and label.bug_type == bug_type


@pytest.mark.parametrize(("body", "is_bug"), [
    ("Solves a race condition where the node starts without a quorum.", True),
    ("In the suite this caused a deadlock because the call never got a reply.", True),
    ("This reworks the module. Races were a concern in the old design.", False),
    ("There is a race when the owner exits before the reply.", True),
    ("We retry anyway, so if there is a race condition, it would be good to see it.", False),
    ("Without it, queue.delete can hang on a dead master.", True),
    ("The two processes would race to register the name.", True),
])
def test_body_sentence_that_states_the_bug(body: str, is_bug: bool) -> None:
    """A body cue counts in full when its own sentence says the commit fixes or the old code
    caused it; a cue mentioned in passing under a neutral subject counts half."""
    label = _label_of_message(f"Only stop the supervisor when it owns children\n\n{body}")
    assert label is not None and label.is_concurrency_bug is is_bug


def test_zero_timeout_replaced_by_handle_continue() -> None:
    """init's 0 ms timeout replaced by {:continue, …} is a race whatever the message says."""
    before = ("defmodule G do\n  use GenServer\n  def init(s) do\n    {:ok, s, 0}\n  end\n"
              "  def handle_info(:timeout, s), do: {:noreply, beat(s)}\nend\n")
    after = ("defmodule G do\n  use GenServer\n  def init(s) do\n    {:ok, s, {:continue, :beat}}\n"
             "  end\n  def handle_continue(:beat, s), do: {:noreply, beat(s)}\nend\n")
    ann = annotate_heuristic(_commit("gossip: use handle_continue if possible", "lib/g.ex",
                                     before, after))
    assert ann.label is not None and ann.label.is_concurrency_bug
    assert ann.label.bug_type == BugType.RACE_CONDITION
    assert "diff:init_timeout_to_continue@lib/g.ex" in ann.evidence


def test_signal_must_be_new_in_the_added_lines() -> None:
    """Re-qualifying a call (monitor( -> erlang:monitor() adds no monitor: no signal."""
    before = "-module(m).\nf(P) -> monitor(process, P).\n"
    after = "-module(m).\nf(P) -> erlang:monitor(process, P).\n"
    ann = annotate_heuristic(_commit("Fix monitor/2 auto-import on old releases", "src/m.erl",
                                     before, after, "erlang"))
    assert not any(e.startswith("diff:monitor_added") for e in ann.evidence)
    assert ann.label is not None and not ann.label.is_concurrency_bug


def test_dropping_a_link_with_a_link_message() -> None:
    """"Don't link the worker" with spawn_link removed from production code is an exit-signal
    fix; the same words with no link in the diff are not."""
    before = "-module(m).\nstart(F) -> spawn_link(F).\n"
    after = "-module(m).\nstart(F) -> spawn(F).\n"
    label = annotate_heuristic(_commit("fix(ds): Don't link timeout worker to the caller",
                                       "src/m.erl", before, after, "erlang")).label
    assert label is not None and label.is_concurrency_bug
    assert label.bug_type == BugType.EXIT_SIGNAL
    docs = _label_of_message("fix(ds): Don't link the worker page", "src/m.erl")
    assert docs is not None and not docs.is_concurrency_bug


@pytest.mark.parametrize(("message", "bug_type"), [
    ("Wait longer for the node to join to make the test pass", BugType.RACE_CONDITION),
    ("Fix crash on shutdown of the acceptor pool", BugType.EXIT_SIGNAL),
    ("Fix issues with graceful shutdown of workers", BugType.EXIT_SIGNAL),
    ("Catch shutdown exits when calling the session", BugType.EXIT_SIGNAL),
    ("Catch process exits during graceful shutdown", BugType.EXIT_SIGNAL),
    ("fix removal of names and cleanup after reception of DOWN", BugType.RESOURCE_LEAK),
    ("Kill pids started by apply/3 if the name is already registered to prevent leaks",
     BugType.RESOURCE_LEAK),
    ("Remove stale registry entries after abnormal exit", BugType.RESOURCE_LEAK),
    ("Clean up handlers when the owner dies", BugType.RESOURCE_LEAK),
    ("Worker monitors caller to kill the connection if caller dies", BugType.RESOURCE_LEAK),
    ("Make index_hashtree process exit when related vnode exits", BugType.RESOURCE_LEAK),
    ("[dap] correctly shut down dap when the project node shuts down", BugType.RESOURCE_LEAK),
    ("Fix C2S session close on server shutdown", BugType.RESOURCE_LEAK),
    ("Test timing fixes and async notifier tests", BugType.RACE_CONDITION),
    ("Fix the watcher blocking during slow termination", BugType.DEADLOCK),
    ("fix: Only log the queue if the process is alive\n\nWe should guard against it being dead "
     "by the time we try to inspect it.", BugType.RACE_CONDITION),
])
def test_process_lifecycle_cues(message: str, bug_type: BugType) -> None:
    """Tests that pass once they wait, problems with shutdown, state left behind when a
    process stops, and a process that blocks are concurrency fixes of their kind."""
    label = _label_of_message(message)
    assert label is not None and label.is_concurrency_bug, message
    assert label.bug_type == bug_type


@pytest.mark.parametrize("message", [
    "Improve shutdown logs of the bridge",
    "Make enabling the stream non-blocking",
    "Set the default shutdown of child supervisors to infinity",
    "Clean up the build directory",
    "Use a special exit code when the server reports an error on shutdown",
    'Log "Node shutdown initialized" on authorized shutdown',
])
def test_lifecycle_words_without_a_problem_are_not_fixes(message: str) -> None:
    label = _label_of_message(message)
    assert label is not None and not label.is_concurrency_bug, message


@pytest.mark.parametrize(("subject", "fix"), [
    ("Add a check for the session leak regression", True),
    ("add regression test case for session leak in failed resumption", False),
    ("Add regression tests for the worker leak", False),
])
def test_a_regression_test_is_no_fix_intent(subject: str, fix: bool) -> None:
    """A "regression" is a bug and says the commit fixes one; a regression test is a test
    that was added, and an added test fixes nothing."""
    assert _is_fix(subject, "test/session_SUITE.erl") is fix


@pytest.mark.parametrize(("subject", "fix"), [
    ("Fix deadlock when the handler times out", True),
    # A feature whose subject names a handler: "handler" is a noun, not "handle" the fix.
    ("Add timeout option to the batched event handler", False),
    # Gitmoji before a feature subject hide neither the feature nor the fix.
    ("\u2728 add timeout option to the batched event handler", False),
    (":sparkles: add timeout option to the batched event handler", False),
    ("[handler] add timeout option to the batched event handler", False),
    ("\U0001f41b fix deadlock when the handler times out", True),
])
def test_feature_subjects_with_handlers_and_gitmoji(subject: str, fix: bool) -> None:
    assert _is_fix(subject) is fix, subject


@pytest.mark.parametrize(("subject", "fix"), [
    ("Watch the worker on checkout timeout", True),
    ("Checkout timeout improvements (#2078)", False),
    ("Checkout timeout refactoring", False),
])
def test_a_subject_that_ends_in_improvements_is_a_feature(subject: str, fix: bool) -> None:
    """A weak word and a monitor the change adds make a fix, unless the subject says the
    commit improves or refactors."""
    before = ("defmodule Pool do\n  def checkout(pool) do\n    GenServer.call(pool, :checkout)"
              "\n  end\nend\n")
    after = before.replace("    GenServer.call", "    Process.monitor(pool)\n    GenServer.call")
    label = _label(_commit(subject, "lib/pool.ex", before, after))
    assert label.is_concurrency_bug is fix, subject


@pytest.mark.parametrize(("message", "fix"), [
    ("Drop invalid indexes concurrently when reindexing\n\nThe DROP INDEX query would lock "
     "the whole table.", False),
    ("Create the jobs index with `concurrently: true`", False),
    ("Refresh the materialized view concurrently", False),
    ("Fix reindexing\n\nPostgreSQL prohibits `CONCURRENTLY` operations inside functions.",
     False),
    ("Fix concurrent updates of the jobs table", True),
])
def test_sqls_concurrently_is_not_a_concurrency_cue(message: str, fix: bool) -> None:
    """PostgreSQL's CONCURRENTLY (an index built or dropped without locking the table) is
    not a concurrency bug."""
    assert _is_fix(message, "lib/reindexer.ex") is fix, message


_TIMER_SERVER = """-module(t).
-export([init/1, handle_info/2]).

init(Opts) ->
    Ref = erlang:send_after(1000, self(), tick),
    {ok, #{ref => Ref, opts => Opts}}.

handle_info(tick, State = #{ref := Ref}) ->
    erlang:cancel_timer(Ref),
    New = erlang:send_after(1000, self(), tick),
    {noreply, State#{ref := New}}.
"""


def test_stale_timer_steps_need_a_change_to_the_timer() -> None:
    """The stale-timer steps are this diff's only when the fix changed how the function arms
    its timer; a fix elsewhere in a function that happens to arm one gets none."""
    message = "Fix messages arriving out of order after a reconnect"
    retimed = _TIMER_SERVER.replace("Ref = erlang:send_after(1000, self(), tick)",
                                    "Ref = erlang:start_timer(1000, self(), tick)")
    label = _label(_commit(message, "src/t.erl", _TIMER_SERVER, retimed, "erlang"))
    assert label.bug_type == BugType.MESSAGE_ORDERING
    assert [s.action.value for s in label.event_sequence] == ["timer", "send", "timer",
                                                             "receive"]
    elsewhere = _TIMER_SERVER.replace("opts => Opts}", "opts => maps:from_list(Opts)}")
    label = _label(_commit(message, "src/t.erl", _TIMER_SERVER, elsewhere, "erlang"))
    assert label.is_concurrency_bug and label.bug_type == BugType.MESSAGE_ORDERING
    assert label.event_sequence == [] and label.explanation is None


_HANDOFF_SERVER = """defmodule Fetcher do
  def fetch(url) do
    pid = spawn(fn -> Worker.get(url) end)
    receive do
      {:done, ^pid, body} -> body
    end
  end
end
"""


def test_unwatched_handoff_steps_need_the_fix_to_watch_the_process() -> None:
    """The "nothing notices it died" steps are this diff's only when the fix makes the
    process watch the one it waits on (a monitor, a link)."""
    message = "Fix leak of fetch processes"
    watched = _HANDOFF_SERVER.replace(
        "    receive do\n", "    ref = Process.monitor(pid)\n    receive do\n"
        "      {:DOWN, ^ref, :process, ^pid, reason} -> exit(reason)\n")
    label = _label(_commit(message, "lib/fetcher.ex", _HANDOFF_SERVER, watched))
    assert label.bug_type == BugType.RESOURCE_LEAK
    assert [s.action.value for s in label.event_sequence] == ["spawn", "receive"]
    elsewhere = _HANDOFF_SERVER.replace("-> body", "-> String.trim(body)")
    label = _label(_commit(message, "lib/fetcher.ex", _HANDOFF_SERVER, elsewhere))
    assert label.is_concurrency_bug and label.event_sequence == []


@pytest.mark.parametrize(("message", "fix"), [
    ("Fix lookup that never returns when the server is down", True),
    ("Fix return type: create_topics never returns an ok tuple", False),
    ("Fix dialyzer errors\n\n* docs never returns nil", False),
    ("Fix option parsing\n\n* parse_opt/2 can never return undefined", False),
    ("Prevent the cache from blocking node handoff indefinitely", True),
    ("Avoid hanging indefinitely when the peer is gone", True),
])
def test_what_a_function_never_returns_is_no_hang(message: str, fix: bool) -> None:
    assert _is_fix(message) is fix, message


@pytest.mark.parametrize(("message", "fix"), [
    ("Reducing delay to 5 minutes for leak monitor\n\nA 5 minutes check ought to be "
     "sufficient.", False),
    ("Add a leak detector for connections", False),
    ("Fix leaked monitors on checkout", True),
    ("Fix leak of monitors when the caller dies", True),
])
def test_a_tool_that_looks_for_leaks_is_no_leak(message: str, fix: bool) -> None:
    """A "leak monitor" or "leak detector" is a tool that looks for leaks, not a leaked
    monitor."""
    assert _is_fix(message, "src/pool.erl") is fix, message


@pytest.mark.parametrize(("message", "fix"), [
    ("Fix type specs for Cache.fetch\n\nWithout nil in the spec Dialyzer concludes that the "
     "function can never return.", False),
    ("Fix dialyzer warnings\n\nThe loop can never return, so spec it as no_return().", False),
    ("Fix Dialyzer race condition warning in the registry", True),
    ("Fix the reader that can never return when the writer dies", True),
])
def test_a_spec_that_never_returns_is_dialyzers_verdict(message: str, fix: bool) -> None:
    """A commit about types for Dialyzer fixes no hang, whatever it says "can never
    return"; a race its subject names still counts."""
    assert _is_fix(message, "lib/cache.ex") is fix, message


@pytest.mark.parametrize(("message", "fix"), [
    ("fix: handle nil values in atomic validations", False),
    ("fix: ensure context is set on atomic changesets", False),
    ("Update the ETS table atomically on tracker update", True),
    ("Ensure carbons are applied atomically with session establishment", True),
    ("fix(pool): recreate the pool if it exists\n\nCreating a pool is a sequence of "
     "operations on the registry's state, and this sequence is not atomic.", True),
    ("fix: properly express not atomic reason in bulk updates", False),
])
def test_atomic_is_about_shared_state_only(message: str, fix: bool) -> None:
    """An "atomic update" or "atomic validation" is a kind of query in Ash or Ecto; an
    update of a table, a counter, a registry or a session made atomic cures a race."""
    assert _is_fix(message, "lib/changeset.ex") is fix, message


@pytest.mark.parametrize(("message", "fix"), [
    ("Enable write concurrency on the stats ETS table", False),
    ("Use read concurrency for the registry table", False),
    ("Fix concurrency bug in the stats table", True),
])
def test_an_ets_tables_read_or_write_concurrency_is_tuning(message: str, fix: bool) -> None:
    """`{write_concurrency, true}` tunes a table for parallel access; turning it on fixes
    no race."""
    assert _is_fix(message, "src/stats.erl") is fix, message


@pytest.mark.parametrize(("message", "fix"), [
    ("Fix timing issue in the bridge reconnect test", True),
    ("Fix a few timing-sensitive suite tests", True),
    ("Fix timing dependent test", True),
    ("test(limiter): avoid test case failure due to timing errors", True),
    ("Fix the timing of the banner animation\n\nIt faded in too late.", False),
])
def test_a_timing_issue_is_a_flaky_test(message: str, fix: bool) -> None:
    """A test that fails on timing races the work it waits for."""
    assert _is_fix(message, "test/bridge_test.exs") is fix, message


@pytest.mark.parametrize(("message", "fix"), [
    ("Add a keepalive tolerance option\n\nThere is a race between the ping and its ack when "
     "the peer is slow.", False),
    ("Add a test for checkouts\n\nThe pool deadlocks when a checkout times out.", False),
    ("Refactor credit/5\n\nAnd fix a race condition flake in the client suite.", True),
    ("Add a race condition barrier for disconnect", True),
    ("feat(resource): non-blocking channel health checks\n\nHealth checks ran concurrently "
     "with the channel's calls.", False),
    ("feat(mq): fix flaky test", True),
    ("chore(sessions): remove redundant trap_exit flag\n\nThe process no longer links to "
     "its workers, so EXIT messages cannot arrive.", False),
    # the verb in any form
    ("Adding libp2p_connection:session for direct access to a session.\n\nThis avoids "
     "race conditions in retrieving a session that is not registered yet.", False),
    ("Implemented inactivity timeouts for client and acceptor.\n\nA linked acceptor "
     "crashed the client on shutdown: its EXIT signal is trapped now.", False),
    ("Moved the lookup inside the lock to fix the race", True),
    # moving code is how races close: a move whose body names the race as the point fixes it
    ("Move the reader check into the GC action\n\nThe check for readers may race with a "
     "queue's reader update, crashing the store.", True),
    ("Move the store to ets\n\nReads went through the server, which deadlocked when a "
     "conversion called back into it.", True),
    ("Move the store to ets\n\nIt speeds up reads under load.", False),
    # an API that takes more options is a feature, whatever mailbox its options can cap
    ("Accept keyword options in add_logger_handler/1\n\nApps can set :discard_threshold to "
     "avoid unbounded mailbox growth under error bursts.", False),
    # code found unneeded and dropped, whatever construct it was
    ("No need to trap exits", False),
    ("We no longer need to close the port.\n\nThis also fixes a hang in IEx.", True),
])
def test_a_feature_subject_outweighs_a_race_its_body_names(message: str, fix: bool) -> None:
    """A commit whose subject adds or refactors something is that, whatever race its body
    describes, unless the body says the commit fixes one or the subject names it."""
    assert _is_fix(message, "lib/conn.ex") is fix, message


@pytest.mark.parametrize(("message", "fix"), [
    ("Skip flaky test", False),
    ("test(raft): mark test cases as flaky", False),
    ("Disable the flaky partition test until the race is understood", False),
    ("Demonstrate the race between the worker pool and its supervisor", False),
    ("Re-disable the room race condition tests", False),
    ("Disable buffer_outgoing_test. Nondeterministic on CI", False),
    ("Remove intermittently failing keys test", False),
    ("Delete non-deterministic mining test from the conductor suite", False),
    ("Remove a racy test assertion", True),
    ("test(gateway): temporarily remove flaky case", False),
    ("test: remove flakyness of the test for delete_alert_query/1", True),  # fixes it
    ("Repeat the flaky payment test until it passes", False),
    ("Tests for a race condition between unload/1 and calls to the mocked module", False),
    ("Reproduce and fix the race between the worker pool and its supervisor", True),
    ("Fix flaky test", True),
])
def test_a_test_set_aside_fixes_nothing(message: str, fix: bool) -> None:
    """A test switched off, marked flaky or written to show a race leaves the race there."""
    assert _is_fix(message, "test/pool_test.exs") is fix, message


@pytest.mark.parametrize(("message", "fix"), [
    ("fix up flake packaging", False),
    ("Fix nix flake inputs for the dev shell", False),
    ("Update flake.lock", False),
    ("Fix flake in the registry test", True),
    ("Fix flakes in the registry tests", True),
    ("Unflake the registry test", True),
])
def test_a_nix_flake_is_no_flaky_test(message: str, fix: bool) -> None:
    assert _is_fix(message, "test/registry_test.exs") is fix, message


@pytest.mark.parametrize(("message", "fix"), [
    ("fix: do not validate the token's issue time\n\nThis caused trouble for tokens issued on "
     "a host which does not have clock synchronized.", False),
    ("Synchronize federation_up/0 logic for both link types", False),
    ("Run a synchronize whenever the contributors change", False),
    ("Fix unsynchronized access to the registry table", True),
])
def test_synchronizing_is_no_concurrency_but_its_lack_is(message: str, fix: bool) -> None:
    """"Synchronize" names a sync of data, versions, logic or clocks far more often than
    processes coordinated; access that was "unsynchronized" is a race."""
    assert _is_fix(message, "src/auth.erl") is fix, message


@pytest.mark.parametrize(("message", "fix"), [
    ("fix(portal): keep the handler attached\n\nWhen a client hangs\nup in the middle of a "
     "request, the handler raises.", False),
    ("Fix the handler that hangs when a client disconnects", True),
])
def test_a_client_that_hangs_up_is_no_hang(message: str, fix: bool) -> None:
    assert _is_fix(message, "lib/handler.ex") is fix, message


@pytest.mark.parametrize(("message", "fix"), [
    ("Fix directory recursion in the compiler\n\nWe turned it on by accident and now people "
     "rely on it, so we're stuck with it.", False),
    ("Fix a consumer stuck with a full mailbox", True),
])
def test_stuck_with_it_is_an_idiom_not_a_hang(message: str, fix: bool) -> None:
    assert _is_fix(message, "src/compiler.erl") is fix, message


@pytest.mark.parametrize(("message", "fix"), [
    ("fix: stop the Alt-Svc parser looping on a non-token byte\n\nparse_entries recursed on "
     "the same bytes forever, pinning a scheduler at 100% CPU: one header could hang the "
     "connection process.", False),
    ("Fix client hang on expired shapes\n\nA stale CDN response kept the client in an "
     "infinite loop of 409s.", False),
    ("Fix hang when the pool is full\n\nThe caller waited forever for a checkout reply.", True),
    # a subject that fixes a loop: the "deadlocks" its body names were the loop
    ("Fixed infinite loop in document updates\n\nI also think that the deadlocks I was "
     "experiencing were due to this bug.", False),
    ("Fix infinite loop caused by a race between the two readers", True),
])
def test_a_loop_that_never_ends_is_no_hang_on_another_process(message: str, fix: bool) -> None:
    """A process that "hangs" in an infinite loop waits on no other process: no concurrency
    bug, unlike one that waits forever for a reply."""
    assert _is_fix(message, "src/alt_svc.erl") is fix, message


@pytest.mark.parametrize(("message", "fix"), [
    ("Instant block mining (#3399)\n\n* Instant block mining\n\n* Enable it in more suites\n\n"
     "* Fix very rare race", False),
    ("Message Containers (#5077)\n\n* Introduce message containers\n* Fix test flake\n", False),
    # a squashed pull request whose body is its commits' subjects
    ("improvement: bulk destroy for array changes\n\nimprovement: set the union tag\n"
     "fix: sleep to avoid a flaky uuid test\ntest: remove unused variable\n", False),
    # the subject says what the change mends, or the body says it outside the list
    ("Fix reuse connections (#2454)\n\n* Reuse connections\n* There was a race condition where "
     "the worker reused a closed connection", True),
    ("Improve test reliability (#488)\n\n- Fix a race-condition in the debugger tests\n"
     "- Wait for the server to start", True),
    ("Reimplement the registry\n\nThis fixes a race condition between two writers.\n\n"
     "* Use persistent_term\n* Drop the old table", True),
    # an item that says what the subject's change mends is its reason, not another change
    ("Stop the stale member when a partial partition is detected\n\n* Avoids deadlock on "
     "syncing queues\n* The queue must restart and rejoin the group", True),
    ("Set socket options in the keylist stanza\n\n* This removes the race condition that "
     "let a message reach the source before its owner\n* Document ownership changes.", True),
    ("Revamp the socket module\n\n* Avoids race conditions in tests\n* Add a stanza parser\n"
     "* Add OTP-compliant start", False),
])
def test_a_race_fixed_as_one_item_of_a_squashed_feature_is_no_fix(message: str,
                                                                    fix: bool) -> None:
    """A squashed pull request made for something else (a feature, an upgrade, a
    refactoring) that lists a race fix among its commits is not a concurrency fix: its pairs
    are the feature's. A subject that mends something, or a body that names the bug outside
    the list, keeps it."""
    assert _is_fix(message, "src/chain.erl") is fix, message


@pytest.mark.parametrize(("message", "fix"), [
    ("Fix presence_SUITE: do not start modules in parallel", True),
    ("Avoid parallel execution of the tests with the host types group", True),
    ("Fix test resource name collision across parallel outer groups", True),
    ("Fix webhook cache entries\n\nWhen requests with identical client ids arrive almost in "
     "parallel, it could happen that two entries are stored for one key.", True),
    ("Recover vhosts message stores in parallel after a crash", False),
    ("fix(portal): check repo health in parallel", False),
    ("Run parallel tests in parallel", False),
])
def test_parallel_work_named_as_the_cause_is_concurrency(message: str, fix: bool) -> None:
    """Work done in parallel is the cause of a bug when the fix undoes it, when parallel runs
    collide, or when the message says what parallel arrival could do; as what a change
    introduces ("check repo health in parallel") it is a feature."""
    assert _is_fix(message, "src/presence.erl") is fix, message


@pytest.mark.parametrize(("message", "fix"), [
    ("Slow down message generation!", False),
    ("Correct a function pattern match\n\nIt counted every progress message as an attempt, "
     "which slowed down message progress.", False),
    ("Handle down messages from the delegate", True),
])
def test_slowing_down_messages_is_no_down_message(message: str, fix: bool) -> None:
    assert _is_fix(message, "src/gen.erl") is fix, message


@pytest.mark.parametrize(("message", "fix"), [
    ("Skip symlinks when walking tarballs and raise storage transfer concurrency", False),
    ("fix: check the max concurrent users per tenant", False),
    ("Fix concurrent checkouts of one connection", True),
])
def test_concurrency_as_an_amount_is_no_race(message: str, fix: bool) -> None:
    """How much runs at once (tuned, or a load) is no race between processes."""
    assert _is_fix(message, "lib/storage.ex") is fix, message


@pytest.mark.parametrize(("message", "fix"), [
    ("Sort peers by index\n\nThe API returns interfaces in arbitrary order, causing "
     "non-deterministic hostname resolution.", False),
    ("Remove use of non-deterministic function", False),
    ("Fix non-deterministic tests", True),
    ("Fix non-deterministic failures in the pool suite", True),
    ("Fix the advisory upsert\n\nThe upsert is non-deterministic under async tests.", True),
    ("Fix the policy tests\n\nRunning them in parallel leads to non-determinism.", True),
])
def test_non_determinism_is_flaky_only_of_tests_or_processes(message: str, fix: bool) -> None:
    """A value, an order or a function that is non-deterministic is no race; a test, a
    failure or processes that are is a flaky one."""
    assert _is_fix(message, "lib/peers.ex") is fix, message


@pytest.mark.parametrize(("message", "fix"), [
    ("Wait for the crash sentinel to stop before starting a new one", True),
    ("queue_SUITE: wait for the stream replica before consuming.", True),
    ("Make sure to wait until the pool is ready before checking out", True),
    ("Ensure current task terminates before shutting down serving", True),
    ("fix(portal): ensure postgrex is started before app", True),
    ("Add a pool\n\nCallers wait for a worker before they send.", False),
    ("Wait for a worker", False),
    ("Ensure the docs are built before publishing", False),
])
def test_a_subject_that_orders_two_steps_fixes_a_race(message: str, fix: bool) -> None:
    """"Wait for X before Y" as what a commit does orders two processes' steps; the same
    words in a body describe a design."""
    assert _is_fix(message, "test/pool_test.exs") is fix, message


@pytest.mark.parametrize(("message", "fix"), [
    ("catch noproc instead of doing alive check", True),
    ("core: Let the supervisor handle already_started errors gracefully", True),
    ("Replica: Handle nodedowns and noproc when starting the reader.", True),
    ("Add a pool\n\nA checkout of a dead worker returns noproc.", False),
])
def test_a_subject_about_a_process_found_dead_or_started_is_a_race(message: str,
                                                                   fix: bool) -> None:
    """noproc or already_started in what a commit does: another process's life ran
    concurrently with code that assumed it; in a body, often a pasted error."""
    assert _is_fix(message, "src/pool.erl") is fix, message


_SLEEPY_TEST = ('defmodule ServerTest do\n  use ExUnit.Case\n  test "evaluates" do\n'
                '    send(Server, :eval)\n    Process.sleep(100)\n    assert Server.done?()\n'
                '  end\nend\n')


@pytest.mark.parametrize(("subject", "fix"), [
    # A feature, whose test now waits: the test is the feature's.
    ("Allow configuring the evaluation timeout", False),
    # A subject that names a problem as well: the test's new wait is the fix.
    ("Cleanup exit messages on evaluation", True),
])
def test_a_tests_new_wait_beside_a_feature_is_the_features_test(subject: str,
                                                                 fix: bool) -> None:
    waits = _SLEEPY_TEST.replace("Process.sleep(100)", "assert_receive :evaluated")
    commit = CommitInput("r", "s", subject, (
        file_input("lib/server.ex", _PLAIN, _PLAIN.replace("1", "2"), "elixir", False),
        file_input("test/server_test.exs", _SLEEPY_TEST, waits, "elixir", True)))
    ann = annotate_heuristic(commit)
    assert any(e.startswith("diff:sleep_to_sync@") for e in ann.evidence)
    assert ann.label is not None and ann.label.is_concurrency_bug is fix, subject


@pytest.mark.parametrize(("subject", "fix"), [
    ("Return {:error, :unavailable} for ensure_compiled in a deadlock", False),
    ("Fix stream format error message, fix race condition in handling child pad removed",
     True),
    ("Logger handler: fix race condition during start-up", True),
    ("Add a timer to identify the race condition", False),
    ("Fix repo identifier test race condition", True),
    ("Fix test race error", True),
    ("Disable stats reporting when unset, remove race for group nodes", True),
    ("Remove debugging print, de-race the unit test", True),
    ("Log a warning when the pool deadlocks", False),
    # a run set up to find races finds none yet
    ("Run all tests with +T 9 to get a better chance at finding races.", False),
    ("Add a hook to aid PULSE in finding issue #174's race", False),
    # how an exit message is shown or logged, not how exits are handled
    ("Show exit messages in IEx", False),
    ("Make the exit message be a notice", False),
    ("Use format_reason in supervisor child exit messages, too", False),
    ("Don't send exit messages on a normal async exit", True),
    # a test added that shows a race fixes none
    ("Add failing list data files race test", False),
    ("Add test for deadlock handling.", False),
    ("Add a test and fix the race in list_data_files", True),
    ("Fix find race in the registry", True),
])
def test_a_report_does_not_reach_across_a_clause_that_fixes(subject: str, fix: bool) -> None:
    assert _is_fix(subject) is fix, subject


def test_send_after_replaced_by_start_timer() -> None:
    """start_timer tags each timeout message with its timer, so a stale one can be told
    apart: with a weak "timeout" message in production code, that is a fix."""
    before = ("-module(h).\narm(T) -> erlang:send_after(T, self(), timeout).\n"
              "loop(R) -> receive timeout -> stop; M -> R(M) end.\n")
    after = ("-module(h).\narm(T) -> erlang:start_timer(T, self(), ?MODULE).\n"
             "loop(R) -> receive {timeout, _, ?MODULE} -> stop; M -> R(M) end.\n")
    ann = annotate_heuristic(_commit("use start_timer for handler timeouts", "src/h.erl",
                                     before, after, "erlang"))
    assert ann.label is not None and ann.label.is_concurrency_bug
    assert ann.label.bug_type == BugType.MESSAGE_ORDERING
    assert "diff:send_after_to_start_timer@src/h.erl" in ann.evidence
    plain = annotate_heuristic(_commit("use start_timer", "src/h.erl", before,
                                       before.replace("arm(T)", "arm(Time)"), "erlang"))
    assert plain.label is not None and not plain.label.is_concurrency_bug


def test_receive_after_added_below_other_lines_is_seen() -> None:
    """The `after` clause is found on any added line, not only on the first one."""
    before = ("defmodule W do\n  def wait(ref) do\n    receive do\n      {^ref, r} -> r\n"
              "    end\n  end\nend\n")
    after = ("defmodule W do\n  def wait(ref) do\n    log(:waiting)\n    receive do\n"
             "      {^ref, r} -> r\n    after\n      5_000 -> exit(:timeout)\n    end\n  end\n"
             "end\n")
    ann = annotate_heuristic(_commit("Stop waiting on a lost reply", "lib/w.ex", before, after))
    assert "diff:receive_after@lib/w.ex" in ann.evidence


@pytest.mark.parametrize("line", ["  Process.flag(:trap_exit, true)",
                                  "  receive do {:EXIT, _pid, reason} -> reason end",
                                  "  catch :exit, reason -> {:error, reason}"])
def test_diff_rules_ignore_case(line: str) -> None:
    """Rules read code in any case, as `:EXIT` and `:exit` both are exit signals."""
    before = "defmodule A do\n  def a do\n    :ok\n  end\nend\n"
    after = before.replace("    :ok\n", f"    :ok\n{line}\n")
    [file] = _commit("Handle exits", "lib/a.ex", before, after).files
    assert [s.rule.name for s in find_signals(file)] == ["trap_exit"]


def _rules_fired(path: str, before: str, after: str, language: str = "elixir") -> list[str]:
    [file] = _commit("Change it", path, before, after, language).files
    return [s.rule.name for s in find_signals(file)]


_REGISTRY_ERL = """-module(reg).
-export([collect/1, clear/1]).

collect(R) ->
  [C:collect(R) || {_, C} <- ets:lookup(tab, R)].

clear(R) ->
  [C:cleanup(R) || {_, C} <- ets:take(tab, R)].
"""


def test_a_construct_rewrapped_inside_its_function_fires_no_rule() -> None:
    """A line that keeps its ETS read and its atomic take, only re-wrapped and given a
    trailing `ok`, replaces nothing: no check-then-act fix is claimed."""
    after = _REGISTRY_ERL.replace(
        "<- ets:take(tab, R)].", "\n    <- ets:take(tab, R)],\n  ok.").replace(
        "<- ets:lookup(tab, R)].", "<- ets:lookup(tab, R)],\n  ok.")
    assert _rules_fired("src/reg.erl", _REGISTRY_ERL, after, "erlang") == []


def test_a_link_renamed_in_place_is_no_link_change_but_one_moved_to_another_process_is() -> None:
    """`spawn_link(Mod, Fun, Args)` becoming `spawn_link(M, F, A)` links nothing new; a
    spawn_link moved out of start_link into the spawned process links it to another."""
    before = ("-module(hc).\n-export([start_link/1, run/1]).\n\nstart_link(N) ->\n"
              "    Pid = proc_lib:spawn_link(?MODULE, run, [N]),\n"
              "    _ = proc_lib:spawn_link(?MODULE, check, [Pid, N]),\n    {ok, Pid}.\n\n"
              "run(N) ->\n    receive go -> run(N) end.\n")
    renamed = before.replace("[Pid, N]", "[P, N]").replace("{ok, Pid}", "{ok, P}").replace(
        "Pid = ", "P = ")
    assert "link_changed" not in _rules_fired("src/hc.erl", before, renamed, "erlang")
    moved = before.replace("    _ = proc_lib:spawn_link(?MODULE, check, [Pid, N]),\n", "").replace(
        "run(N) ->\n    receive", "run(N) ->\n    _ = proc_lib:spawn_link(?MODULE, check, "
        "[self(), N]),\n    receive")
    assert "link_changed" in _rules_fired("src/hc.erl", before, moved, "erlang")


def test_a_construct_taken_out_into_a_helper_is_no_change_but_a_new_one_there_is() -> None:
    """A `catch :exit` moved out of a function into a new helper it now calls (or into one
    that replaces a helper of another name) is the same code in the same process: no rule
    fires. The helper gaining a monitor the old code never had is a change."""
    before = ("defmodule Mgr do\n  def dispatch(job) do\n    Logger.debug(\"go\")\n"
              "    run(job)\n  catch\n    :exit, reason -> {:error, reason}\n  end\n\n"
              "  defp run(job), do: job\nend\n")
    helper = before.replace("    run(job)\n  catch\n    :exit, reason -> {:error, reason}\n",
                            "    safely(job)\n").replace(
        "job\nend\n", "job\n\n  defp safely(job) do\n    try do\n      run(job)\n"
        "    catch\n      :exit, r -> {:error, r}\n    end\n  end\nend\n")
    assert _rules_fired("lib/mgr.ex", before, helper) == []
    plain = before.replace("  catch\n    :exit, reason -> {:error, reason}\n", "")
    assert "trap_exit" in _rules_fired("lib/mgr.ex", plain, helper)  # a catch it never had
    guarded = helper.replace("safely(", "guarded(").replace("{:error, r}", "{:failed, r}")
    assert _rules_fired("lib/mgr.ex", guarded, helper) == []
    watched = helper.replace("      run(job)\n", "      Process.monitor(job)\n      run(job)\n")
    assert "monitor_added" in _rules_fired("lib/mgr.ex", before, watched)


def test_a_timeout_fires_when_its_value_changes_not_when_its_line_moves() -> None:
    before = ("defmodule C do\n  def get(s) do\n    Client.get(s, timeout: 5_000)\n  end\n\n"
              "  def put(s, v), do: GenServer.cast(s, {:put, v})\nend\n")
    longer = before.replace("5_000", "30_000")
    assert "timeout_changed" in _rules_fired("lib/c.ex", before, longer)
    reindented = before.replace("    Client.get(s, timeout: 5_000)",
                                "    s\n    |> Client.get(timeout:  5_000)")
    assert "timeout_changed" not in _rules_fired("lib/c.ex", before, reindented)


def test_a_replacement_that_keeps_the_old_way_for_older_releases_still_fires() -> None:
    """handle_continue added beside the zero timeout it replaces, kept for old OTP
    releases: the new construct is new, so the change is the fix it looks like."""
    before = ("defmodule G do\n  use GenServer\n  def init(s) do\n    {:ok, s, 0}\n  end\n\n"
              "  def handle_info(:timeout, s), do: {:noreply, s}\nend\n")
    after = before.replace("    {:ok, s, 0}\n", "    if continue?(), do: {:ok, s, {:continue, :go}}"
                           ", else: {:ok, s, 0}\n").replace(
        "  def handle_info", "  def handle_continue(:go, s), do: {:noreply, s}\n  def handle_info")
    assert "init_timeout_to_continue" in _rules_fired("lib/g.ex", before, after)


def test_a_continue_tuple_is_a_genserver_continue_only_where_handle_continue_is() -> None:
    """`{:continue, state}` is what a ThousandIsland handler returns; it replaces a zero
    timeout the way a GenServer continue does only in a module that handles continues."""
    before = ("defmodule H do\n  def handle_data(data, socket, state) do\n"
              "    {:ok, state, 0}\n  end\nend\n")
    after = before.replace("{:ok, state, 0}", "{:continue, state}")
    assert "init_timeout_to_continue" not in _rules_fired("lib/h.ex", before, after)
    handled = after.replace("  end\nend\n", "  end\n\n  def handle_continue(_, state), "
                            "do: {:noreply, state}\nend\n")
    assert "init_timeout_to_continue" in _rules_fired("lib/h.ex", before, handled)


def test_diff_rule_patterns_keep_their_escapes() -> None:
    """Lowering a rule's pattern leaves its escapes alone: `\\S` still means a non-space."""
    assert _code(r"Process\.Sleep\S").search("process.sleep(")
    assert not _code(r"Process\.Sleep\S").search("process.sleep (")
    assert _code(r"Sleep\B").search("sleepy")
    assert not _code(r"Sleep\B").search("sleep(")


_SERVER = """defmodule Server do
  use GenServer

  @timeout 5_000

  def start_link(opts), do: GenServer.start_link(__MODULE__, opts)

  def fetch(pid, key) do
    GenServer.call(pid, {:fetch, key})
  end

  def handle_call({:fetch, key}, _from, state) do
    {:reply, Map.get(state, key), state}
  end
end
"""


def test_an_insertion_is_attributed_to_the_function_it_lands_in() -> None:
    """Lines added at the top of handle_call/3, after a blank line, belong to handle_call/3,
    not to fetch/2 above it; the export-like attribute change is never the location."""
    after = _SERVER.replace("  @timeout 5_000", "  @timeout 10_000").replace(
        "\n  def handle_call({:fetch, key}, _from, state) do\n",
        "\n  def handle_call({:fetch, key}, _from, state) do\n"
        "    Process.monitor(state.owner)\n    send(state.owner, {:fetched, key})\n")
    label = annotate_heuristic(_commit("Fix race between fetch and the owner", "lib/server.ex",
                                       _SERVER, after)).label
    assert label is not None and label.bug_location is not None
    assert label.bug_location.function == "handle_call/3"
    start = _SERVER.split("\n").index("  def handle_call({:fetch, key}, _from, state) do") + 1
    assert label.bug_location.start_line is not None
    assert start <= label.bug_location.start_line <= start + 2


def test_a_clause_added_after_the_last_is_located_in_its_function() -> None:
    """A catch-all clause added below a function's clauses, past a blank line, lands in that
    function; its lines stay inside the function's before span (they were inverted, and the
    location fell back to the file)."""
    before = ("defmodule Runner do\n  def handle_info({:done, id}, state) do\n"
              "    {:noreply, Map.delete(state, id)}\n  end\n\n  defp run(x), do: x\nend\n")
    after = before.replace("  end\n\n", "  end\n\n  def handle_info(_, state) do\n"
                                          "    {:noreply, state}\n  end\n\n")
    label = _label(_commit("Handle DOWN messages in the runner", "lib/runner.ex", before, after))
    assert label.is_concurrency_bug and label.bug_location is not None
    assert label.bug_location.function == "handle_info/2"
    assert label.bug_location.start_line == label.bug_location.end_line == 4


def test_the_message_names_the_function() -> None:
    """Of two changed functions, the one the message names in code form is the location."""
    after = _SERVER.replace("{:fetch, key}})", "{:fetch, key}}, 10_000)").replace(
        "{:reply, Map.get(state, key), state}", "{:reply, Map.fetch(state, key), state}")
    label = annotate_heuristic(_commit("Fix race in handle_call/3 of the server",
                                       "lib/server.ex", _SERVER, after)).label
    assert label is not None and label.bug_location is not None
    assert label.bug_location.function == "handle_call/3"


def test_a_function_moved_whole_is_not_where_the_fix_is() -> None:
    """A helper moved from one test module into a shared one is neither the bug nor its
    cure: the located function is the test whose sleep became a wait for the value."""
    helper = ("read_until(Key) ->\n    case get(Key) of\n        undefined ->\n"
              "            receive after 100 -> read_until(Key) end;\n"
              "        Value ->\n            Value\n    end.\n")
    a_before = "-module(a_test).\n-export([scenario/0]).\n\nscenario() ->\n" \
               "    timer:sleep(60000),\n    ok = get(k).\n"
    a_after = "-module(a_test).\n-export([scenario/0]).\n\nscenario() ->\n" \
              "    ens:read_until(k).\n"
    b_before = "-module(b_test).\n-export([scenario/0]).\n\nscenario() ->\n" \
               "    read_until(k).\n\n" + helper
    b_after = "-module(b_test).\n-export([scenario/0]).\n\nscenario() ->\n" \
              "    ens:read_until(k).\n"
    shared_before = "-module(ens).\n-export([start/0]).\n\nstart() ->\n    ok.\n"
    shared_after = shared_before.replace("[start/0]", "[start/0, read_until/1]") + "\n" + helper
    files = tuple(file_input(path, before, after, "erlang", True) for path, before, after in (
        ("test/a_test.erl", a_before, a_after), ("test/b_test.erl", b_before, b_after),
        ("test/ens.erl", shared_before, shared_after)))
    label = annotate_heuristic(CommitInput("r", "s", "Fix flaky tests", files)).label
    assert label is not None and label.bug_location is not None
    assert (label.bug_location.file, label.bug_location.function) == (
        "test/a_test.erl", "scenario/0")


def test_a_function_only_re_indented_is_not_where_the_fix_is() -> None:
    """A function whose lines a change only re-indented or re-wrapped (its code, spaces
    aside, is the same) is not the fix, though its lines are many and about processes: the
    located function is the one whose code changed."""
    before = ("-module(pool).\n-export([notify/2, checkin/2]).\n\n"
              "notify(Pid, Msg) ->\n    case Pid of\n        undefined -> ok;\n"
              "        Pid ->\n            Pid ! Msg,\n            erlang:monitor(process, Pid)\n"
              "    end.\n\n"
              "checkin(Socket, State) ->\n    ok = inet:setopts(Socket, [{active, once}]),\n"
              "    State.\n")
    after = before.replace("        Pid ->\n            Pid ! Msg,\n            erlang:",
                           "        Pid -> Pid ! Msg, erlang:").replace(
        "    ok = inet:setopts", "    inet:setopts")
    label = _label(_commit("Do not leak sockets on errors", "src/pool.erl", before, after,
                           language="erlang"))
    assert label.is_concurrency_bug and label.bug_location is not None
    assert label.bug_location.function == "checkin/2"


def test_process_words_are_read_in_code_not_in_log_messages() -> None:
    """How much a change is about processes counts its code: a log message's words are
    none, and Erlang's send operator is a send (Elixir's `!` is a boolean not)."""
    assert process_words('debug("start a federation link for ~s", [X])', "erlang") == 0
    assert process_words("Parent ! finished, X =/= Y", "erlang") == 1
    assert process_words("if !ready?(state), do: :ok", "elixir") == 0
    assert process_words('Logger.info("monitor the link")') == 2  # no language: all words


def test_the_subject_names_the_function_before_the_body() -> None:
    """A body names the callers and callees of the function a subject names: the subject's
    is the location, though the caller's change is larger and about processes."""
    after = _SERVER.replace("GenServer.call(pid, {:fetch, key})",
                            "key = Task.await(Task.async(fn -> to_string(key) end))\n"
                            "    GenServer.call(pid, {:fetch, key})"
                            "\n    |> then(&elem(&1, 1))").replace(
        "{:reply, Map.get(state, key), state}", "{:reply, Map.fetch(state, key), state}")
    message = ("Fix race in handle_call/3 of the server\n\nA caller in fetch/2 could see the "
               "old state.")
    label = annotate_heuristic(_commit(message, "lib/server.ex", _SERVER, after)).label
    assert label is not None and label.bug_location is not None
    assert label.bug_location.function == "handle_call/3"


def test_a_build_definition_is_not_the_location() -> None:
    """A fix that also bumps the project's version in mix.exs is located in the code it
    changed, here the test it makes wait."""
    mix = ('defmodule App.MixProject do\n  use Mix.Project\n\n  def project do\n'
           '    [app: :app, version: "1.0.0"]\n  end\nend\n')
    commit = CommitInput("r", "s", "Fix flaky test of the evaluator", (
        file_input("mix.exs", mix, mix.replace("1.0.0", "1.0.1"), "elixir", False),
        file_input("test/server_test.exs", _SLEEPY_TEST,
                   _SLEEPY_TEST.replace("Process.sleep(100)", "assert_receive :evaluated"),
                   "elixir", True)))
    label = _label(commit)
    assert label.is_concurrency_bug and label.bug_location is not None
    assert label.bug_location.file == "test/server_test.exs"


_CHECKER = """defmodule Checker do
  def check_behaviours(module) do
    Enum.each(module.behaviours(), &verify/1)
  end

  def translate_specs(module) do
    Enum.map(module.specs(), &to_string/1)
  end
end
"""


@pytest.mark.parametrize(("subject", "function"), [
    ("Avoid race conditions on behaviour checks", "check_behaviours/1"),
    ("Avoid race conditions when specs are translated", "translate_specs/1"),
    # A conventional-commit type and scope are not the subject's words: the larger change
    # stays the location.
    ("checks(behaviour): avoid race condition", "translate_specs/1"),
])
def test_the_subject_names_the_function_in_words(subject: str, function: str) -> None:
    """Of changed functions no rule points at, the one the subject names in plain words,
    in any order and number, is the location."""
    after = _CHECKER.replace("&verify/1", "&verify!/1").replace(
        "Enum.map(module.specs(), &to_string/1)",
        "module.specs()\n    |> :lists.map(&to_string/1)\n    |> Enum.sort()")
    label = annotate_heuristic(_commit(subject, "lib/checker.ex", _CHECKER, after)).label
    assert label is not None and label.bug_location is not None
    assert label.bug_location.function == function


def test_the_subject_s_words_outrank_how_much_a_change_is_about_processes() -> None:
    """The function the subject names in words is the location, though another changed
    function's lines speak more of processes (a call it now makes through a server)."""
    after = _CHECKER.replace("&verify/1", "&verify!/1").replace(
        "Enum.map(module.specs(), &to_string/1)",
        "GenServer.call(Specs, {:translate, module.specs()})")
    label = annotate_heuristic(_commit("Avoid race conditions on behaviour checks",
                                       "lib/checker.ex", _CHECKER, after)).label
    assert label is not None and label.bug_location is not None
    assert label.bug_location.function == "check_behaviours/1"


def test_a_function_only_commented_is_not_where_the_fix_is() -> None:
    """A function whose change is a comment (one explaining the fix, full of process words)
    is not where the fix is: the function whose code changed is."""
    after = _CHECKER.replace("&verify/1", "&verify!/1").replace(
        "  def translate_specs(module) do\n",
        "  def translate_specs(module) do\n    # No race with the monitor: the caller's"
        " call is\n    # serialised by the server process, which links the reply.\n")
    label = annotate_heuristic(_commit("Fix a race condition in the checker",
                                       "lib/checker.ex", _CHECKER, after)).label
    assert label is not None and label.bug_location is not None
    assert label.bug_location.function == "check_behaviours/1"


def test_a_call_made_a_cast_backs_a_weak_word() -> None:
    """A synchronous call made asynchronous backs a weak "non-blocking": the caller no
    longer waits on a process that may be waiting on it."""
    before = ("defmodule Manager do\n  def process_event(pid, event) do\n"
              "    GenServer.call(pid, {:event, event})\n  end\nend\n")
    after = before.replace("GenServer.call(pid, {:event, event})",
                           "GenServer.cast(pid, {:event, event})")
    label = _label(_commit("Process events non-blocking", "lib/manager.ex", before, after))
    assert label.is_concurrency_bug and label.bug_type == BugType.DEADLOCK
    assert label.bug_location is not None
    assert label.bug_location.function == "process_event/2"
    unchanged = _label(_commit("Process events non-blocking", "lib/manager.ex", before,
                               before.replace(":event", ":handle")))
    assert not unchanged.is_concurrency_bug


def test_a_spawn_made_linked_is_a_leak_fix() -> None:
    """A helper that is now spawned linked to its owner backs a weak "link" message: the
    process no longer outlives the request it works for."""
    before = ("-module(pool).\n-export([checkout/1]).\n\ncheckout(Ref) ->\n"
              "    Requester = self(),\n    _ = spawn(fun() -> Requester ! {Ref, ok} end),\n"
              "    receive {Ref, R} -> R end.\n")
    after = before.replace("spawn(fun", "spawn_link(fun")
    label = _label(_commit("Link checkout process to fix dangling aborted request",
                           "src/pool.erl", before, after, "erlang"))
    assert label.is_concurrency_bug and label.bug_type == BugType.RESOURCE_LEAK
    assert label.bug_location is not None and label.bug_location.function == "checkout/1"
    unlinked = _label(_commit("Link checkout process to fix dangling aborted request",
                              "src/pool.erl", before, before.replace("ok}", "done}"),
                              "erlang"))
    assert not unlinked.is_concurrency_bug


def test_order_wins_over_race() -> None:
    """A message about order makes a "race" a message-ordering bug."""
    label = _label_of_message("Fix race: replies arrive out of order after a reconnect")
    assert label is not None and label.bug_type == BugType.MESSAGE_ORDERING


def test_no_rule_no_explanation_and_it_says_why() -> None:
    """With only the message to go on, no steps and no explanation are made up; the source
    says the label rests on the message."""
    ann = annotate_heuristic(_commit("Fix race condition in the pool", "lib/a.ex", _PLAIN,
                                     _PLAIN.replace("1", "2")))
    assert ann.label is not None and ann.label.is_concurrency_bug
    assert ann.label.event_sequence == [] and ann.label.explanation is None
    assert ann.explanation_source is not None
    assert ann.explanation_source.startswith("none: the message says 'race condition'")
    assert ann.checks is not None and not ann.checks.passed


def test_a_rule_explanation_names_this_diff() -> None:
    """Two commits with the same rule get explanations with their own function names."""
    texts = set()
    for name in ("call_pool", "ask_pool"):
        before = POOL_DEADLOCK.replace("handle_call", name).replace(
            "-export([init/1, handle_call/3", f"-export([init/1, {name}/3")
        after = POOL_FIXED.replace("handle_call", name).replace(
            "-export([init/1, handle_call/3", f"-export([init/1, {name}/3")
        label = annotate_heuristic(_commit("Fix hang", "src/pool.erl", before, after,
                                           "erlang")).label
        assert label is not None and label.explanation is not None
        assert f"{name}/3" in label.explanation
        texts.add(label.explanation)
    assert len(texts) == 2


def test_a_change_to_docs_and_comments_only_is_not_a_fix() -> None:
    """Whatever the subject says, a diff that touches only @doc text and comments fixes no
    concurrency bug; a doctest's iex> lines are code."""
    before = ('defmodule Pool do\n  @doc """\n  Checks out a worker.\n  """\n'
              '  def checkout(pool), do: GenServer.call(pool, :checkout)\nend\n')
    docs = before.replace("Checks out a worker.", "Checks out a worker; races are avoided.")
    label = _label(_commit("Fix race condition docs in checkout", "lib/pool.ex", before, docs))
    assert not label.is_concurrency_bug
    doctest = before.replace("Checks out a worker.", "    iex> Pool.checkout(:pool)")
    label = _label(_commit("Fix race condition in checkout doctest", "lib/pool.ex", before,
                           doctest))
    assert label.is_concurrency_bug


@pytest.mark.parametrize(("path", "language", "before", "after"), [
    ("test/csi_SUITE.erl", "erlang",
     "client_state(Config) ->\n    #presence{sub_els = [#delay{}]} = recv(),\n    ok.\n",
     "client_state(Config) ->\n    #presence{sub_els = [#vcard{}|_]} = recv(),\n    ok.\n"),
    ("test/csi_test.exs", "elixir",
     'defmodule CsiTest do\n  test "state" do\n    %{delay: _} = recv()\n  end\nend\n',
     'defmodule CsiTest do\n  test "state" do\n    %{vcard: _} = recv()\n  end\nend\n'),
])
def test_a_line_that_starts_with_the_other_languages_comment_sign_is_code(
        path: str, language: str, before: str, after: str) -> None:
    """An Erlang record (`#presence{}`) and an Elixir map (`%{}`) are code, not comments: a
    change to them is no documentation-only change."""
    label = _label(_commit("Fix race in CSI test case", path, before, after, language,
                           is_test=True))
    assert label.is_concurrency_bug


def test_pasted_output_is_not_prose() -> None:
    """A crash report or an Erlang term pasted into the body names no cue."""
    label = _label_of_message(
        "Log the reason of stopped sessions\n\n    ** (EXIT) shutdown: {'EXIT', #PID<0.1.0>}\n"
        "    {atomic, ok}\n")
    assert label is not None and not label.is_concurrency_bug
    assert prose("Fix\n\n```\n{'EXIT', x}\n```\nThere is a race") == "Fix\n\n \nThere is a race"


@pytest.mark.parametrize("term", ["{shutdown, timeout}", "{:error, :timeout}",
                                  "{'EXIT', Pid, killed}", "{atomic, ok}"])
def test_a_term_written_into_a_sentence_is_code_not_a_cue(term: str) -> None:
    """A tuple of atoms and variables in a sentence ("avoid a generic {shutdown, timeout}
    error") is a value the code handles, not the author naming a timeout or an exit."""
    message = f"Log the point of origin of errors\n\nAvoid a generic {term} error."
    assert term not in prose(message)
    assert not [c for c, _, _ in cue_weights(message) if c.name in ("timeout", "exit_signal")]
    assert prose("Fix {a, b} and %{a: 1}") == "Fix   and %{a: 1}"  # a map is no tuple


@pytest.mark.parametrize("subject", ["chore: publish new package versions (#4659)",
                                     "Version Packages", "chore(main): release 2.1.0"])
def test_a_release_that_lists_its_fixes_is_not_one(subject: str) -> None:
    """A release commit's body is the changelog of what it ships, fixed races included; the
    release fixes nothing itself."""
    label = _label_of_message(f"{subject}\n\n## @app/sync-service@1.2.3\n\n"
                              "- Fix a race condition between shape removal and the log "
                              "collector.\n")
    assert label is not None and not label.is_concurrency_bug


_MIX_TEST = """defmodule Mix.Tasks.CompileTest do
  use MixTest.Case

  test "recompiles after a change" do
    File.touch!("lib/a.ex")
    assert Mix.Tasks.Compile.run([]) == {:ok, []}
  end
end
"""


def test_a_race_with_file_modification_times_is_no_concurrency_fix() -> None:
    """A test that waits for a file's mtime to move on (a file touched within the same second
    is not seen as newer) fixes no interleaving of processes; a deadlock so fixed still is
    one, and a test race whose fix touches a file in passing still is a race."""
    after = _MIX_TEST.replace('    File.touch!("lib/a.ex")\n', '    mtime = File.stat!("lib/a.ex")'
                              '.mtime\n    File.touch!("lib/a.ex", bump(mtime))\n')
    race = _commit("Fix race condition in the compile test", "test/compile_test.exs",
                   _MIX_TEST, after, is_test=True)
    assert not _label(race).is_concurrency_bug
    deadlock = _commit("Fix deadlock in the compile test", "test/compile_test.exs",
                       _MIX_TEST, after, is_test=True)
    assert _label(deadlock).is_concurrency_bug
    waits = _MIX_TEST.replace("    assert Mix", "    pid = start_supervised!(Watcher)\n"
                              "    ref = Process.monitor(pid)\n    send(pid, :scan)\n"
                              "    assert_receive {:scanned, ^pid}\n"
                              "    refute_received {:DOWN, ^ref, _, _, _}\n"
                              "    Watcher.stop(pid)\n    assert Mix")
    passing = _commit("Fix race condition in the compile test", "test/compile_test.exs",
                      _MIX_TEST, waits.replace('File.touch!("lib/a.ex")',
                                               'File.touch!("lib/a.ex", 0)'), is_test=True)
    assert _label(passing).is_concurrency_bug


def test_release_the_verb_is_no_release() -> None:
    """"Release" that frees something when something happens is what a fix does."""
    assert _is_fix("Release pool slots when the pool stops\n\nStopping a pool leaked slots "
                   "of checked-out connections, so a race with checkin starved the host.")
    assert _is_fix("Release structs before asserting deadlock")
    assert not _is_fix("Release 2.1.0 with a fix for a race condition")


def test_a_subject_is_prose_whatever_it_starts_with() -> None:
    """A "[component]" tag before a subject does not make it a pasted Erlang list."""
    label = _label_of_message("[worker_pool] Fix deadlock caused by a restarted worker\n\n"
                              "[{pool, 1}]")
    assert label is not None and label.is_concurrency_bug
    assert label.bug_type == BugType.DEADLOCK
    assert prose("[pool] Fix race\n\n[{a, 1}]\nThe race") == "[pool] Fix race\n\nThe race"


def test_pasted_tool_warnings_are_not_prose() -> None:
    """Dialyzer's and the compiler's warnings pasted into a body ("will never return") are
    what a tool wrote, not a hang the author reports."""
    message = ("Fix misc. dialyzer errors\n\nFix the following issues:\nsrc/gen_pool.erl\n"
               " 473: The call gen_pool:claim(W::[any(),...]) will never return since it "
               "differs\nlib/pool/server.ex:12: warning: the process is stuck forever\n")
    assert prose(message) == "Fix misc. dialyzer errors\n\nFix the following issues:\n"
    label = _label_of_message(message)
    assert label is not None and not label.is_concurrency_bug


@pytest.mark.parametrize(("message", "fix"), [
    ("Provide more debug output for flaky test", False),
    ("Verbose logging to track down intermittently failing testcase.", False),
    ("Add log message to help diagnose flaky test", False),
    ("Add fix & debug info for intermittent EUnit test failures", True),  # it fixes, too
    ("Log less to reduce flakiness", True),
])
def test_output_added_to_find_a_flaky_tests_cause_fixes_nothing_yet(message: str,
                                                                     fix: bool) -> None:
    assert _is_fix(message, "test/a_test.exs") is fix


@pytest.mark.parametrize(("message", "fix"), [
    ("Remove stale entries from the peer book", False),  # names no problem: the test's
    ("Fix flaky counter test", True),
])
def test_a_test_that_now_waits_beside_a_production_change_needs_a_named_problem(
        message: str, fix: bool) -> None:
    """A sleep replaced by a wait in a test, beside a change to the code it tests, is that
    change's test unless the message names a problem; alone in a commit it is the fix."""
    code = file_input("lib/book.ex", _PLAIN, _PLAIN.replace("1", "2"), "elixir", False)
    test = file_input("test/counter_test.exs", COUNTER_TEST_FLAKY, COUNTER_TEST_FIXED,
                      "elixir", True)
    label = annotate_heuristic(CommitInput("r", "s", message, (code, test))).label
    assert label is not None and label.is_concurrency_bug is fix
    alone = annotate_heuristic(CommitInput("r", "s", message, (test,))).label
    assert alone is not None and alone.is_concurrency_bug


@pytest.mark.parametrize(("message", "bug_type"), [
    # the subject's word outranks the body's, a little stronger, that says how it shows
    ("Fix pid leak when init failed\n\nThe caller gets a stray EXIT message from the "
     "linked process.", BugType.RESOURCE_LEAK),
    ("Fix possible deadlock when calling the code server\n\nThere is a race between the "
     "two calls.", BugType.DEADLOCK),
    # ...but not a much stronger one: the body names the bug the flaky test showed
    ("Fix flaky pool test\n\nThe checkout deadlocks when the pool restarts.",
     BugType.DEADLOCK),
])
def test_the_subject_says_what_bug_the_commit_fixes(message: str, bug_type: BugType) -> None:
    label = _label_of_message(message)
    assert label is not None and label.bug_type == bug_type


@pytest.mark.parametrize(("message", "fix"), [
    ("Enable write_concurrency for file handle cache stats\n\nValues are then written "
     "concurrently without taking a global lock.", False),
    ("Handle concurrent checkouts of the same worker", True),
])
def test_a_handle_that_is_a_thing_says_no_fix(message: str, fix: bool) -> None:
    """"handle" says the commit fixes something when it is what the commit does, not when
    it is a file handle."""
    assert _is_fix(message, "lib/fhc.ex") is fix, message


def test_a_stated_cause_in_the_body_counts_whole() -> None:
    """A neutral subject whose body states the bug keeps the cue's full weight."""
    for body in ("There is a race between checkout and checkin.",
                 "A race occurs when two callers check out at once.",
                 "The test was flaky because it checked out before the pool started.",
                 "The former is race prone.",
                 "The problem with the post condition is that it is racy.",
                 "To reduce the likelihood of the shovel's start racing with the queues'.",
                 "Attempt to reduce flaky subscription tests.",
                 "Without confirms, a race condition was possible.",
                 "When a replica start races the writer shutting down, the replica fails.",
                 "Relax the timing a bit, as it flakes on Windows runners.",
                 "* Close a potential registration race condition between RPC and signing",
                 "Callers could hang forever due to a lost reply.",
                 # what happened, told in the past: the bug the commit fixes
                 "The bare assertions raced the asynchronous failover.",
                 "A stream that outran the send window blocked forever inside a call.",
                 "Two pods ran the same migration at once and deadlocked.",
                 "The node hung waiting for the gatherer.",
                 "That allows a race condition where rows may be updated twice.",
                 # a race by its other name, and a window made smaller
                 "Read then insert leaves a TOCTOU window: the producer can die between them.",
                 "Re-bind the port to prove it is ours: this shrinks the TOCTOU window.",
                 "Hold the lock longer to narrow the race window.",
                 # what the old code was open to
                 "Some file:position/2 operations are subject to race conditions.",
                 "The check is prone to races when two nodes join."):
        label = _label_of_message(f"Rework checkout\n\n{body}")
        assert label is not None and label.is_concurrency_bug, body


@pytest.mark.parametrize("body", [
    "This is not a bug, it's a race in start-up we cannot fix.",
    "We retry anyway, so if there is a race condition it would be good to see it.",
    "The test is flaky.",  # flaky is said of many things a test does
    "Remove error handling when starting pools now that race conditions are not possible.",
    "I did not want a test that would run forever to provoke a race condition, because EUnit "
    "stops tests that run too long.",
    # a property test's shrinking shrinks no race window
    "Proper refuses shrinking, as cases that time out do not shrink well: a race is rare.",
])
def test_a_body_that_names_no_race_of_the_old_code_counts_half(body: str) -> None:
    assert not _is_fix(f"Rework checkout\n\n{body}"), body


@pytest.mark.parametrize("body", [
    "Under high concurrency, parked requests kept more heap live than they needed.",
    "Reduce concurrency in the pagination test cases.",
])
def test_a_load_or_a_load_tuned_is_no_concurrency_bug(body: str) -> None:
    """"Concurrency" that names how much runs at once, or a change to it, names no bug, even
    beside a subject that fixes something."""
    assert not _is_fix(f"Fix the page count of backward pagination\n\n{body}"), body
    assert _is_fix("Fix the page count of backward pagination\n\nTwo callers ran it "
                   "concurrently and both wrote the count.")


def test_a_race_the_body_rules_out_is_no_fix_whatever_the_subject() -> None:
    assert not _is_fix("Fix checkout errors\n\nDrop the retry now that races are not possible.")


def test_a_sentence_wrapped_across_lines_is_read_whole() -> None:
    """Bodies are hard-wrapped: the words that state a race may sit on the line before it,
    for the words that name the bug; a weak word stays within its line."""
    assert _is_fix("Include the route table in the definitions\n\nDo not add tables here, as "
                   "this will result\nin a deadlock where the migration is stuck.")
    assert _is_fix("Check for the same-node special case\n\nIf the owner is this node, do not "
                   "call the manager.  Otherwise, a\ndeadlock occurs.")
    assert not _is_fix("Move the session info to maps\n\nThis is relevant, as it would "
                       "affect how the tables are\nsynchronised across nodes.")
    assert flowed("Subject\nwrapped\nline\n\n* item\n* next\n  more") == (
        "Subject\nwrapped line\n\n* item\n* next more")


def test_initial_imports_and_tooling_are_not_fixes() -> None:
    """A first commit is not a fix whatever its diff shows; with no Elixir/Erlang change, a
    race in the build or CI is the tooling's."""
    ann = annotate_heuristic(_commit("Initial commit with the pool\n\nAvoids a race.",
                                     "src/pool.erl", POOL_DEADLOCK, POOL_FIXED, "erlang"))
    assert ann.label is not None and not ann.label.is_concurrency_bug
    ann = annotate_heuristic(CommitInput("r", "s", "Fix race condition in the Makefile", ()))
    assert ann.label is not None and not ann.label.is_concurrency_bug
    ann = annotate_heuristic(CommitInput("r", "s", "Fix race condition in view.js", ()))
    assert ann.label is not None and ann.label.is_concurrency_bug


_CLIENT = """defmodule Client do
  def fetch(pid) do
    send(pid, {:fetch, self()})
    receive do
      {:reply, value} -> value
    end
  end
end
"""

_CLIENT_FIXED = """defmodule Client do
  def fetch(pid) do
    send(pid, {:fetch, self()})
    await_reply(5_000)
  end

  defp await_reply(timeout) do
    receive do
      {:reply, value} -> value
    after
      timeout -> {:error, :timeout}
    end
  end
end
"""


def test_a_rule_in_a_function_the_fix_added_locates_the_function_that_calls_it() -> None:
    """The bug lived in code the before version had: a new helper that holds the rule's
    construct points the location at the changed function that now calls it."""
    ann = annotate_heuristic(_commit("Fix hang when the server dies", "lib/client.ex",
                                     _CLIENT, _CLIENT_FIXED))
    assert ann.label is not None and ann.label.bug_location is not None
    assert ann.label.bug_location.function == "fetch/1"
    assert ann.label.bug_location.start_line is not None
    assert ann.label.explanation is not None
    assert ann.label.explanation.startswith("In fetch/1 (lib/client.ex), through the new "
                                            "await_reply/1,")


def test_a_function_given_another_arity_is_not_a_new_helper() -> None:
    """fetch/1 becoming fetch/2 is the same function changed, located as itself."""
    before = _CLIENT.replace("  def fetch(pid) do\n    send", "  def run(pid) do\n    fetch(pid)\n"
                             "  end\n\n  def fetch(pid) do\n    send")
    after = before.replace("fetch(pid)", "fetch(pid, 5_000)", 1).replace(
        "  def fetch(pid) do", "  def fetch(pid, timeout) do").replace(
        "      {:reply, value} -> value\n", "      {:reply, value} -> value\n    after\n"
        "      timeout -> {:error, :timeout}\n")
    label = _label(_commit("Fix hang when the server dies", "lib/client.ex", before, after))
    assert label.bug_location is not None and label.bug_location.function == "fetch/2"


def test_a_new_production_function_only_a_test_calls_locates_the_test() -> None:
    """A flaky test fixed with the help of a new accessor in production: the test, which
    the before version had and which now calls the accessor, is where the bug lived."""
    lib = "defmodule Q do\n  @max_age 60\n\n  def put(x), do: x\nend\n"
    lib_after = lib.replace("  def put", "  def max_age, do: @max_age\n\n  def put")
    test = ("defmodule QTest do\n  use ExUnit.Case\n\n  test \"drops old events\" do\n"
            "    t = now() - 3600\n    assert Q.put(t)\n  end\nend\n")
    test_after = test.replace("now() - 3600", "now() - div(Q.max_age(), 2)")
    commit = CommitInput("r", "s", "Fix time-of-day flake in the queue test", (
        file_input("lib/q.ex", lib, lib_after, "elixir", False),
        file_input("test/q_test.exs", test, test_after, "elixir", True)))
    label = _label(commit)
    assert label.is_concurrency_bug and label.bug_location is not None
    assert label.bug_location.file == "test/q_test.exs"
    assert label.bug_location.function == 'test "drops old events"'
    # the same new function called from production code stays the production fix's place
    lib_called = lib_after.replace("def put(x), do: x", "def put(x), do: {x, max_age()}")
    other = _label(CommitInput("r", "s", "Fix time-of-day flake in the queue test", (
        file_input("lib/q.ex", lib, lib_called, "elixir", False),
        file_input("test/q_test.exs", test, test_after, "elixir", True))))
    assert other.bug_location is not None and other.bug_location.file == "lib/q.ex"


def test_the_location_prefers_a_function_the_before_version_had() -> None:
    """With no rule to point at a line, a changed function that existed is chosen over a
    new one, however much the new one speaks of processes."""
    after = _SERVER.replace("{:reply, Map.get(state, key), state}",
                            "{:reply, Map.fetch(state, key), state}").replace(
        "\nend\n", "\n\n  def watch(pid) do\n    send(pid, {:watch, self()})\n"
        "    GenServer.cast(pid, {:watched, self()})\n  end\nend\n")
    label = _label(_commit("Fix race condition in the server", "lib/server.ex", _SERVER, after))
    assert label.bug_location is not None and label.bug_location.function == "handle_call/3"


def test_a_changed_doctest_is_located_at_the_function_it_documents() -> None:
    """A doctest belongs to the function its @doc documents (the next one), not to the
    function that ends above the doc."""
    before = ('defmodule Reg do\n  def size(reg) do\n    :ets.info(reg, :size)\n  end\n\n'
              '  @doc """\n  Counts.\n\n      iex> Reg.count(Reg.Test)\n      0\n\n  """\n'
              '  def count(reg), do: length(:ets.tab2list(reg))\nend\n')
    after = before.replace("Reg.count(Reg.Test)", "Reg.count(Reg.CountTest)")
    label = _label(_commit("Fix race in the count doctest", "lib/reg.ex", before, after))
    assert label.bug_location is not None and label.bug_location.function == "count/1"


_SLEEPY_TEST = """defmodule WorkerTest do
  use ExUnit.Case

  test "starts a child" do
    child = {Task, fn -> :timer.sleep(:infinity) end}
    assert {:ok, _} = start_supervised(child)
  end

  test "notifies the owner" do
    {:ok, pid} = Worker.start_link(owner: self())
    send(pid, :work)
    Process.sleep(100)
    assert Worker.done?(pid)
  end
end
"""


def test_a_replacement_rule_locates_where_the_replacement_happened() -> None:
    """A sleep renamed in one test and a sleep replaced by a wait in another: the location
    is the test that now waits, not the first line that mentions a sleep."""
    after = _SLEEPY_TEST.replace(":timer.sleep(:infinity)", "Process.sleep(:infinity)").replace(
        "    Process.sleep(100)\n", "    assert_receive {:done, ^pid}\n")
    label = _label(_commit("Fix flaky worker test", "test/worker_test.exs", _SLEEPY_TEST, after,
                           is_test=True))
    assert label.bug_location is not None
    assert label.bug_location.function == 'test "notifies the owner"'


_CACHE_SERVER = """-module(cache_server).
-behaviour(gen_server).
-export([start_link/0, init/1, handle_call/3, terminate/2]).

start_link() ->
    gen_server:start_link({local, ?MODULE}, ?MODULE, [], []).

init([]) ->
    Table = ets:new(cache, [named_table]),
    {ok, #{table => Table}}.

handle_call(get, _From, State) ->
    {reply, ok, State}.

terminate(_Reason, #{table := Table}) ->
    ets:delete(Table),
    ok.
"""
_CACHE_TRAPS = _CACHE_SERVER.replace("init([]) ->\n", "init([]) ->\n"
                                     "    process_flag(trap_exit, true),\n")


def test_trap_exit_added_for_terminate_has_steps_from_this_module() -> None:
    """init/1 gains trap_exit in a linked server with a terminate callback: the steps name
    the linked start and terminate/2 by their lines, and pass the checks."""
    ann = annotate_heuristic(_commit("Trap exits so that terminate cleans up the table",
                                     "src/cache_server.erl", _CACHE_SERVER, _CACHE_TRAPS,
                                     "erlang"))
    label = ann.label
    assert label is not None and label.bug_type == BugType.EXIT_SIGNAL
    assert label.bug_location is not None and label.bug_location.function == "init/1"
    lines = _CACHE_SERVER.split("\n")
    start = lines.index("    gen_server:start_link({local, ?MODULE}, ?MODULE, [], []).") + 1
    stop = lines.index("terminate(_Reason, #{table := Table}) ->") + 1
    assert [(s.actor, s.action.value, s.line) for s in label.event_sequence] == [
        ("parent of cache_server", "link", start), ("parent of cache_server", "exit", None),
        ("cache_server process", "exit", stop)]
    assert label.explanation is not None and f"line {stop}" in label.explanation
    assert ann.explanation_source == "rule:untrapped_shutdown"
    assert ann.checks is not None and ann.checks.passed


def test_no_shutdown_story_for_a_process_that_trapped_exits_already() -> None:
    """A module that trapped exits before the change tells another story: no steps, and
    the rule's own explanation."""
    before = _CACHE_SERVER.replace("handle_call(get, _From, State) ->\n",
                                   "handle_call(get, _From, State) ->\n"
                                   "    process_flag(trap_exit, true),\n")
    after = before.replace("init([]) ->\n", "init([]) ->\n    process_flag(trap_exit, true),\n")
    ann = annotate_heuristic(_commit("Trap exits so that terminate cleans up the table",
                                     "src/cache_server.erl", before, after, "erlang"))
    assert ann.label is not None and ann.label.event_sequence == []
    assert ann.explanation_source == "rule:trap_exit"


def test_a_rule_explains_only_a_bug_of_its_kind() -> None:
    """A monitor added to a race fix: the monitor rule's mechanism (a peer that dies
    unnoticed) does not explain a race, so the label says so instead of borrowing it; the
    same rule explains a leak."""
    after = _SERVER.replace(
        "\n  def handle_call({:fetch, key}, _from, state) do\n",
        "\n  def handle_call({:fetch, key}, _from, state) do\n    Process.monitor(state.owner)\n")
    race = annotate_heuristic(_commit("Fix race between fetch and the owner", "lib/server.ex",
                                      _SERVER, after))
    assert race.label is not None and race.label.bug_type == BugType.RACE_CONDITION
    assert race.label.explanation is None
    assert race.explanation_source is not None and "does not explain a race_condition" in \
        race.explanation_source
    leak = annotate_heuristic(_commit("Fix process leak when the owner exits", "lib/server.ex",
                                      _SERVER, after))
    assert leak.label is not None and leak.label.bug_type == BugType.RESOURCE_LEAK
    assert leak.label.explanation is not None and "handle_call/3" in leak.label.explanation


@pytest.mark.parametrize(("subject", "phrase"), [
    ("Fix the manager timing out on a large initial request count", "timing out"),
    ("Fix the checkout that times out under load", "times out"),
    ("Fix the reader that timed out", "timed out"),
])
def test_every_form_of_timing_out_is_a_timeout(subject: str, phrase: str) -> None:
    """"timing out" and "times out" name a timeout as "timed out" does."""
    assert [(c.name, p) for c, p, _ in cue_weights(subject)] == [("timeout", phrase)]


@pytest.mark.parametrize(("message", "bug_type"), [
    ("Fixed fullsync lockup if status called during sync.", BugType.DEADLOCK),
    ("Change communications with sink to avoid infinite blocking.", BugType.DEADLOCK),
    ("Don't forward realtime messages if the destination mailbox is too big",
     BugType.MAILBOX_OVERFLOW),
    ("Make bloom folding avoid giant message queues", BugType.MAILBOX_OVERFLOW),
    # a queue of stored messages is no mailbox; log lines are not messages processes exchange
    ("If big offline message queue, show only subset on WebAdmin", None),
    ("Reorder log messages.\n\nSo that the set_env calls generate no false errors.", None),
    # a hang that eats CPU is a loop
    ("Fixed function clause error when migrating queue\n\nShutting down a node would hang "
     "forever chewing up a significant amount of cpu.", None),
])
def test_more_words_for_lockups_and_full_mailboxes(message: str,
                                                   bug_type: BugType | None) -> None:
    """"lockup", "infinite blocking", a mailbox "too big" and "giant message queues" name
    the bug; a big queue of stored messages, log messages reordered and a hang that eats CPU
    do not."""
    label = _label_of_message(message)
    assert label is not None
    assert label.bug_type == (bug_type or BugType.NOT_CONCURRENCY), message


@pytest.mark.parametrize(("subject", "set_aside"), [
    ("Removed the verify_no_repair_for_non_indexed_data test.", True),
    ("Drop the `yz_errors` suite", True),
    ("Remove sleep from test", False),
    ("Remove race in test", False),
])
def test_a_test_removed_by_name_is_set_aside(subject: str, set_aside: bool) -> None:
    """Removing a test fixes no race, whatever race its body says the test could not
    tolerate; removing something from a test may."""
    assert ("sets_aside" in negatives_of(subject)) is set_aside, subject


@pytest.mark.parametrize(("subject", "fix"), [
    ("test(bridge_mqtt): wait for all cluster nodes to resubscribe", True),
    ("coordination_SUITE: Wait for a condition in `shrink_cluster_with_snapshot`", True),
    ("Wait for subscription to receive DOWN notification in unit test", True),
    # a design that waits is no test made to wait
    ("Wait for the cluster upgrade in the background", False),
])
def test_a_test_made_to_wait_for_another_process_is_a_race_fix(subject: str,
                                                                fix: bool) -> None:
    """A test that now waits for what another process does was racing it."""
    assert _is_fix(subject, "test/bridge_SUITE.erl") is fix, subject
