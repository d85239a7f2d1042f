"""Parsing only the Erlang forms a change reaches: the same pairs as parsing files whole."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings

from miners.forms import Forms
from miners.functions import _windowed_sides, build_function_pairs
from miners.records import ParseStatus
from miners.windows import plan_windows
from tests.edits import Edit, apply_edits, edit_lists, git_diff, replace_once, unified

HELPERS = "".join(f"""
%% @doc Helper {i}: waits for a reply.
-spec helper_{i}(pid()) -> ok | {{down, term(), integer()}}.
helper_{i}(Pid) when is_pid(Pid) ->
    Ref = erlang:monitor(process, Pid),
    receive
        {{'DOWN', Ref, _, _, Reason}} -> {{down, Reason, {i}}}
    after
        {i}000 -> ok
    end.
""" for i in range(10))

MODULE = f"""%% A pool of connections.
-module(pool_server).
-behaviour(gen_server).

-export([start_link/1, checkout/2]).
-export([init/1, handle_call/3, handle_cast/2]).

-include_lib("kernel/include/logger.hrl").

-define(TIMEOUT, 5000).
-define(LOG(Msg), ?LOG_INFO(#{{msg => Msg}})).

-record(state, {{idle = [] :: [pid()],
                busy = [] :: [pid()],
                waiting = queue:new()}}).

start_link(Opts) ->
    gen_server:start_link(?MODULE, Opts, []).

-spec checkout(pid(), timeout()) -> {{ok, pid()}} | {{error, timeout}}.
checkout(Pool, Timeout) ->
    gen_server:call(Pool, checkout, Timeout).

init(_Opts) ->
    {{ok, #state{{}}}}.

handle_call(checkout, From, #state{{idle = [Conn | Rest], busy = Busy}} = State) ->
    {{reply, {{ok, Conn}}, State#state{{idle = Rest, busy = [From | Busy]}}}};
handle_call(checkout, From, #state{{waiting = Waiting}} = State) ->
    {{noreply, State#state{{waiting = queue:in(From, Waiting)}}}};
handle_call(_Other, _From, State) ->
    {{reply, {{error, unknown}}, State}}.

handle_cast({{checkin, Conn}}, #state{{idle = Idle}} = State) ->
    ?LOG(checkin),
    {{noreply, State#state{{idle = [Conn | Idle]}}}}.

banner() ->
    "pool
handle_call(not, a, clause) ->
    ok".
{HELPERS}
'quoted name'(X) ->
    {{quoted, X}}.

-ifdef(TEST).
-include_lib("eunit/include/eunit.hrl").

checkout_test() ->
    ?assertEqual(ok, helper_1(self())).
-endif.
"""


EDITS: dict[str, Callable[[str], str]] = {
    "body of a helper": replace_once("{down, Reason, 5}", "{down, Reason, five}"),
    "middle clause": replace_once("queue:in(From, Waiting)", "queue:in_r(From, Waiting)"),
    "clause added": replace_once("handle_call(_Other,", "handle_call(stop, _From, State) ->\n"
                             "    {stop, normal, ok, State};\nhandle_call(_Other,"),
    "last clause removed": replace_once(";\nhandle_call(_Other, _From, State) ->\n"
                                    "    {reply, {error, unknown}, State}.", "."),
    "spec changed": replace_once("-spec checkout(pid(), timeout())", "-spec checkout(pid(), "
                             "non_neg_integer())"),
    "record changed": replace_once("waiting = queue:new()}", "waiting = queue:new(),\n"
                               "                max = 10}"),
    "macro changed": replace_once("-define(TIMEOUT, 5000).", "-define(TIMEOUT, 15000)."),
    "function renamed": replace_once("helper_7(Pid) when", "helper_seven(Pid) when"),
    "quoted name": replace_once("{quoted, X}", "{quoted, X, 2}"),
    "inside the ifdef": replace_once("?assertEqual(ok, helper_1", "?assertEqual(ok, helper_2"),
    "inside a string": replace_once("handle_call(not, a, clause)", "handle_call(not, a, form)"),
    "module renamed": replace_once("-module(pool_server).", "-module(pool)."),
    "function added at the end": replace_once("-endif.\n", "-endif.\n\nlast() -> ok.\n"),
}


def _diff(tmp: Path, before: str, after: str) -> str:
    return git_diff(tmp, before, after, ".erl")


@pytest.mark.parametrize("name", list(EDITS))
def test_windowed_pairs_equal_whole_file_pairs(tmp_path: Path, name: str) -> None:
    after = EDITS[name](MODULE)
    whole = build_function_pairs(MODULE, after, "erlang")
    assert whole[0] == ParseStatus.PARSED
    assert build_function_pairs(MODULE, after, "erlang", _diff(tmp_path, MODULE, after)) == whole


def test_a_local_change_parses_a_small_part_of_a_long_module(tmp_path: Path) -> None:
    after = EDITS["middle clause"](MODULE)
    diff = _diff(tmp_path, MODULE, after)
    windows = plan_windows(MODULE.encode(), after.encode(), diff, Forms)
    assert windows is not None
    assert all(w.share < 0.2 for w in windows)
    _, pairs = build_function_pairs(MODULE, after, "erlang", diff)
    assert [(p.module, p.name, p.change) for p in pairs] == [
        ("pool_server", "handle_call/3", "modified")]
    assert pairs[0].before is not None and pairs[0].before.text.startswith(
        "handle_call(checkout, From, #state{idle")


def test_a_renamed_module_parses_the_file_whole(tmp_path: Path) -> None:
    """Every unit is named after the module, so all of them change with it."""
    after = EDITS["module renamed"](MODULE)
    assert plan_windows(MODULE.encode(), after.encode(), _diff(tmp_path, MODULE, after),
                        Forms) is None
    _, pairs = build_function_pairs(MODULE, after, "erlang", _diff(tmp_path, MODULE, after))
    assert {p.change for p in pairs} == {"added", "removed"} and len(pairs) > 20


def test_a_column_zero_line_inside_a_string_is_not_trusted(tmp_path: Path) -> None:
    """The string's second line looks like a clause; a window cut there does not parse
    cleanly, so the file is parsed whole."""
    after = EDITS["inside a string"](MODULE)
    status, pairs = build_function_pairs(MODULE, after, "erlang",
                                         _diff(tmp_path, MODULE, after))
    assert status == ParseStatus.PARSED
    assert [(p.name, p.change) for p in pairs] == [("banner/0", "modified")]


# erlfmt's style and older unformatted code: `-module (m).` with a space, a guard carried on
# at column 0 after a comma (its last line looks like a clause head `is_map(Opts) ->`), and
# a head that spans lines, its `->` at column 0.
CARRIED = f"""-module (flow).

-export([start_link/2, handle_frame/2]).

start_link(Members, Opts)
when is_list(Members),
is_list(Opts) ->
    start_link(Members, maps:from_list(Opts));
start_link(Members, Opts)
when is_list(Members),
is_map(Opts) ->
    gen_server:start_link(?MODULE, {{Members, Opts}}, []).

handle_frame(
    Reason = #{{cause := frame_too_large}},
    State
) when
    ?IS_CONNECTED(State)
->
    {{shutdown, Reason, State}};
handle_frame(Reason, State) ->
    {{ok, Reason, State}}.
{HELPERS}{HELPERS.replace("helper_", "other_")}"""


@pytest.mark.parametrize(("old", "new", "changed"), [
    ("gen_server:start_link(?MODULE", "gen_server:start_link({local, ?MODULE}, ?MODULE",
     "start_link/2"),
    ("{shutdown, Reason, State}", "{shutdown, Reason, State, 1}", "handle_frame/2"),
])
def test_carried_on_lines_stay_in_their_clause(tmp_path: Path, old: str, new: str,
                                               changed: str) -> None:
    """A guard line or `->` at column 0 continues the clause above it: the window holds the
    whole clause, parses cleanly, and gives the whole file's answer, in the module named
    by `-module (flow).`."""
    after = replace_once(old, new)(CARRIED)
    diff = _diff(tmp_path, CARRIED, after)
    whole = build_function_pairs(CARRIED, after, "erlang")
    assert whole[0] == ParseStatus.PARSED
    assert [(p.module, p.name, p.change) for p in whole[1]] == [("flow", changed, "modified")]
    assert _windowed_sides(CARRIED, after, "erlang", diff) is not None  # no whole parse
    assert build_function_pairs(CARRIED, after, "erlang", diff) == whole


LINES = MODULE.split("\n")
# Lines that end, start or continue forms and strings.
TOKENS = ["end.", "    end,", "-endif.", "-ifdef(TEST).", "helper_3(X) ->", "    ok;", "    ok.",
          '"', "%% note", "handle_call(x, y, z) -> ok.", ").", "-module(other).",
          "'quoted name'(Y) -> Y."]


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(edit_lists(len(LINES)))
def test_random_line_edits_give_the_whole_file_answer(edits: list[Edit]) -> None:
    """Deleting, copying and moving runs of lines, and inserting lines that end or start
    forms; wherever both versions parse whole, the windowed answer is the same."""
    after = apply_edits(LINES, edits, TOKENS)
    whole = build_function_pairs(MODULE, after, "erlang")
    if whole[0] != ParseStatus.PARSED:
        return  # a broken version: the windowed answer may hold more
    assert build_function_pairs(MODULE, after, "erlang", unified(MODULE, after)) == whole
